#!/usr/bin/env bash
# checkpoints.sh PROJECT|--all [FROM]
#
# Every checkpoint file under ROOT/runctl/PROJECT/checkpoints (recursive, following symlinks, sorted
# by project then path; only the recent temporary files of atomic writes in progress, named
# .NAME.tmp…, are left out). --all: every project on the instance. Output stays under SSM's 24,000
# characters: a listing that does not fit ends with next=K, and `checkpoints.sh … K` goes on from
# there. The count line lets the caller tell a complete listing from a cut one.
# env: RUNCTL_ROOT (default $HOME), RUNCTL_LIST_BUDGET (characters per page, default 20000)
# stdout: @runctl project=… checkpoint=<relpath, %-encoded> size=<bytes> md5=<hex> mtime=<epoch>
#         @runctl count=<lines above> total=<files in all> [next=<FROM of the next page>]
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then die 2 "usage: checkpoints.sh PROJECT|--all [FROM]"; fi
FROM="${2:-0}"
is_uint "$FROM" || die 2 "FROM must be a whole number, got $(pct "$FROM")"
BUDGET="${RUNCTL_LIST_BUDGET:-20000}"
is_uint "$BUDGET" || die 2 "RUNCTL_LIST_BUDGET must be a whole number, got $(pct "$BUDGET")"
projects=()
if [ "$1" = --all ]; then
  for dir in "$RUNCTL_DIR"/*/checkpoints; do
    [ -d "$dir" ] || continue
    project="${dir%/checkpoints}"
    project="${project##*/}"
    valid_name "$project" && projects+=("$project")
  done
else
  valid_name "$1" || die 2 "invalid project name: $(pct "$1")"
  projects=("$1")
fi
list_checkpoints "$FROM" "$BUDGET" ${projects[@]+"${projects[@]}"}
exit 0
