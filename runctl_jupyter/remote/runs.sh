#!/usr/bin/env bash
# runs.sh PROJECT
#
# PROJECT's run history, oldest first.
# env: RUNCTL_ROOT (default $HOME), RUNCTL_PYTHON (default python3; reads meta.json)
# stdout: @runctl run=<id> state=running|exited pid=… exit_code=… log_size=… started=<iso>
#                 ended=<iso> last_checkpoint=<relpath> [lost=1] script=<%enc> args_json=<%enc>
#         (one line per run; script/args_json come from meta.json's "script" and "args", empty
#         when absent or when no python is available)
#         @runctl count=N
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 1 ] || die 2 "usage: runs.sh PROJECT"
PROJECT="$1"
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"

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
count=0
for id in ${RUNS_SORTED[@]+"${RUNS_SORTED[@]}"}; do
  dir="$RUNCTL_DIR/$PROJECT/runs/$id"
  run_state "$dir"
  meta="script= args_json="
  if [ -n "$PY" ] && [ -f "$dir/meta.json" ]; then
    meta="$("$PY" -I -S -c "$META_PY" "$dir/meta.json" 2>/dev/null)" || meta="script= args_json="
  fi
  printf '@runctl run=%s %s %s\n' "$(pct "$id")" "$(run_fields "$PROJECT" "$id")" "$meta"
  count=$((count + 1))
done
printf '@runctl count=%s\n' "$count"
exit 0
