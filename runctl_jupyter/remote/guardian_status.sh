#!/usr/bin/env bash
# guardian_status.sh PROJECT [RUN_ID]
# The guardian record of a run (default: the run of runctl:run-id given by the caller, else the newest
# guardian.fields of the project), and whether the guardian process still runs.
# stdout: @runctl guardian=1 run_id=… state=… action=… …   then   @runctl guardian_alive=0|1
#         or @runctl guardian=0 when no run of the project has a guardian.
set -u
# ROOT (RUNCTL_ROOT, else HOME, else the image's login user) and the helpers every runctl script shares
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97
[ "$#" -ge 1 ] && [ "$#" -le 2 ] || { printf 'runctl: usage: guardian_status.sh PROJECT [RUN_ID]\n' >&2; exit 2; }
case "$1/${2:-x}" in *..* | -*) printf 'runctl: invalid name\n' >&2; exit 2 ;; esac
runs="$ROOT/runctl/$1/runs"
file=""
if [ -n "${2:-}" ] && [ -f "$runs/$2/guardian.fields" ]; then
  file="$runs/$2/guardian.fields"
else
  file="$(find "$runs" -mindepth 2 -maxdepth 2 -name guardian.fields -printf '%T@ %p\n' 2>/dev/null |
    LC_ALL=C sort -n | tail -n 1 | cut -d' ' -f2-)"
fi
if [ -z "$file" ]; then
  printf '@runctl guardian=0\n'
  exit 0
fi
head -n 1 -- "$file"
alive=0
pid="$(sed -n 's/.* pid=\([0-9][0-9]*\).*/\1/p' "$file" | head -n 1)"
# (a guardian that exits between the test and the read is not alive: the read's error is not shown)
if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'guardian.sh'; then
  alive=1
fi
printf '@runctl guardian_alive=%s\n' "$alive"
