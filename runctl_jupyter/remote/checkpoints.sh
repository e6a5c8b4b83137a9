#!/usr/bin/env bash
# checkpoints.sh PROJECT
#
# Every checkpoint file under ROOT/runctl/PROJECT/checkpoints (recursive, sorted by path; the
# temporary files of atomic writes in progress, named .NAME.tmp…, are left out).
# env: RUNCTL_ROOT (default $HOME)
# stdout: @runctl checkpoint=<relpath, %-encoded> size=<bytes> md5=<hex> mtime=<epoch>   (per file)
#         @runctl count=N
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 1 ] || die 2 "usage: checkpoints.sh PROJECT"
valid_name "$1" || die 2 "invalid project name: $(pct "$1")"
list_checkpoints "$1"
exit 0
