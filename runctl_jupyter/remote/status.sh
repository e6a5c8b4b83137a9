#!/usr/bin/env bash
# status.sh PROJECT [RUN_ID]
#
# The state of one run: RUN_ID, else the run holding the instance's lock (when it belongs to
# PROJECT), else PROJECT's newest run. Cleans a stale lock (its process is gone, or its PID now
# belongs to another program).
# env: RUNCTL_ROOT (default $HOME)
# stdout:
#   @runctl project=… run_id=… state=running|exited|none pid=… exit_code=… log_size=<bytes>
#           started=<iso> ended=<iso> last_checkpoint=<relpath in checkpoints/, newest written by
#           this run> [lost=1] [stopped=1] [python=<the run's interpreter>] log=<the log's absolute path>
#           [lock_state=running|starting lock_pid=… lock_run_id=… lock_project=…] [stale_cleaned=1]
# lost=1: the process is gone without recording an exit code (killed, instance rebooted).
# then the GPUs, in the same command (gpu.sh): one "@runctl-gpu <nvidia-smi CSV line>" per GPU and
#   @runctl nvidia_smi=ok gpus=N | nvidia_smi=missing | nvidia_smi=failed gpu_error=…
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97
# shellcheck source=gpu.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/gpu.sh" || exit 97

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then die 2 "usage: status.sh PROJECT [RUN_ID]"; fi
PROJECT="$1"
RUN_ID="${2:-}"
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"
if [ -n "$RUN_ID" ]; then valid_name "$RUN_ID" || die 2 "invalid run id: $(pct "$RUN_ID")"; fi

stale_cleaned=0
lock_inspect
if [ "$L_STATE" = stale ]; then
  if lock_clean_stale; then stale_cleaned=1; fi
  lock_inspect
fi

if [ -z "$RUN_ID" ]; then
  if { [ "$L_STATE" = running ] || [ "$L_STATE" = starting ]; } && [ "$L_PROJECT" = "$PROJECT" ] &&
    valid_name "$L_RUN"; then
    RUN_ID="$L_RUN"
  else
    runs_sorted "$PROJECT"
    if [ "${#RUNS_SORTED[@]}" -gt 0 ]; then RUN_ID="${RUNS_SORTED[${#RUNS_SORTED[@]} - 1]}"; fi
  fi
fi

line="@runctl project=$(pct "$PROJECT") run_id=$(pct "$RUN_ID")"
if [ -n "$RUN_ID" ] && [ -d "$RUNCTL_DIR/$PROJECT/runs/$RUN_ID" ]; then
  run_state "$RUNCTL_DIR/$PROJECT/runs/$RUN_ID"
  # log=: the absolute path (SSM runs commands in a folder of its own, so a relative one means nothing)
  line+=" $(run_fields "$PROJECT" "$RUN_ID") log=$(pct "$RUNCTL_DIR/$PROJECT/runs/$RUN_ID/log")"
else
  line+=" state=none pid= exit_code= log_size=0 started= ended= last_checkpoint="
fi
if [ "$L_STATE" = running ] || [ "$L_STATE" = starting ]; then
  line+=" lock_state=$L_STATE lock_pid=${L_PID:-0} lock_run_id=$(pct "$L_RUN") lock_project=$(pct "$L_PROJECT")"
fi
if [ "$stale_cleaned" = 1 ]; then line+=" stale_cleaned=1"; fi
printf '%s\n' "$line"
gpu_report
exit 0
