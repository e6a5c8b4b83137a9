#!/usr/bin/env bash
# runs.sh PROJECT [FROM]
#
# PROJECT's run history, newest first, in pages that fit SSM's 24,000 characters: a page stops before
# RUNCTL_LIST_BUDGET characters and ends with next=K; `runs.sh PROJECT K` goes on from the K-th run.
# env: RUNCTL_ROOT (default $HOME), RUNCTL_PYTHON (default python3; reads meta.json),
#      RUNCTL_LIST_BUDGET (characters per page, default 20000)
# stdout: @runctl run=<id> state=running|exited pid=… exit_code=… log_size=… started=<iso>
#                 ended=<iso> last_checkpoint=<relpath> [lost=1] script=<%enc> args_json=<%enc>
#         (one line per run; script/args_json come from meta.json's "script" and "args", empty
#         when absent or when no python is available)
#         @runctl count=<lines above> total=<runs in all> [next=<FROM of the next page>]
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then die 2 "usage: runs.sh PROJECT [FROM]"; fi
PROJECT="$1"
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"
FROM="${2:-0}"
is_uint "$FROM" || die 2 "FROM must be a whole number, got $(pct "$FROM")"
BUDGET="${RUNCTL_LIST_BUDGET:-20000}"
is_uint "$BUDGET" || die 2 "RUNCTL_LIST_BUDGET must be a whole number, got $(pct "$BUDGET")"

PY="${RUNCTL_PYTHON:-python3}"
command -v -- "$PY" >/dev/null 2>&1 || PY=""
META_PY='import json, sys
from urllib.parse import quote
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        meta = json.load(fh)
except (OSError, ValueError):
    meta = {}
if not isinstance(meta, dict):
    meta = {}
script = meta.get("script")
args = meta.get("args")
print("script=%s args_json=%s" % (
    quote(str(script), safe="") if script is not None else "",
    quote(json.dumps(args), safe="") if args is not None else "",
))'

runs_sorted "$PROJECT"
total=${#RUNS_SORTED[@]}
count=0
used=0
i="$FROM"
while [ "$i" -lt "$total" ]; do
  id="${RUNS_SORTED[$((total - 1 - i))]}" # newest first
  dir="$RUNCTL_DIR/$PROJECT/runs/$id"
  run_state "$dir"
  meta="script= args_json="
  if [ -n "$PY" ] && [ -f "$dir/meta.json" ]; then
    meta="$("$PY" -I -S -c "$META_PY" "$dir/meta.json" 2>/dev/null)" || meta="script= args_json="
  fi
  line="@runctl run=$(pct "$id") $(run_fields "$PROJECT" "$id") $meta"
  if [ "$count" -gt 0 ] && [ $((used + ${#line} + 1)) -gt "$BUDGET" ]; then break; fi
  printf '%s\n' "$line"
  used=$((used + ${#line} + 1))
  count=$((count + 1))
  i=$((i + 1))
done
if [ "$i" -lt "$total" ]; then
  printf '@runctl count=%s total=%s next=%s\n' "$count" "$total" "$i"
else
  printf '@runctl count=%s total=%s\n' "$count" "$total"
fi
exit 0
