#!/usr/bin/env bash
# checkpoints.sh PROJECT|--all
#
# Every checkpoint file under ROOT/runctl/PROJECT/checkpoints (recursive, sorted by path; the
# temporary files of atomic writes in progress, named .NAME.tmp…, are left out). --all: the same
# for every project on the instance, each line with project=NAME first (no count line).
# env: RUNCTL_ROOT (default $HOME)
# stdout: @runctl checkpoint=<relpath, %-encoded> size=<bytes> md5=<hex> mtime=<epoch>   (per file)
#         @runctl count=N
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 1 ] || die 2 "usage: checkpoints.sh PROJECT|--all"
if [ "$1" = --all ]; then
  # every project on the instance (terminate's guard): each line also says project=NAME
  for dir in "$RUNCTL_DIR"/*/checkpoints; do
    [ -d "$dir" ] || continue
    project="${dir%/checkpoints}"
    project="${project##*/}"
    valid_name "$project" || continue
    list_checkpoints "$project" | while IFS= read -r line; do
      case "$line" in
        "@runctl checkpoint="*) printf '@runctl project=%s %s\n' "$project" "${line#@runctl }" ;;
      esac
    done
  done
  exit 0
fi
valid_name "$1" || die 2 "invalid project name: $(pct "$1")"
list_checkpoints "$1"
exit 0
