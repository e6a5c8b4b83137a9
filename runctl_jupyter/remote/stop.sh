#!/usr/bin/env bash
# stop.sh PROJECT WAIT_SECONDS
#
# Asks the training holding the instance's lock to stop: SIGTERM to the training's main process
# (and to runctl's wrapper, which records the stop), never first to its whole process group, then
# waits up to WAIT_SECONDS (0 = don't wait) for it to save and exit. Then whatever is left of its
# group (DataLoader workers, torchrun children, or the training itself when the wait ran out) gets
# SIGTERM, then SIGKILL (a run killed so is recorded with exit code 137 and the lock released).
# Once it returns, every process of the run is gone: a checkpoint listing made after it
# (checkpoints.sh) is not outdated by a file written later.
# env: RUNCTL_ROOT (default $HOME)
# stdout: @runctl stopped=1 run_id=… project=… pid=<training> exit_code=… waited=<seconds> [still_running=1]
#                 [killed=1: the wait ran out] [group_survived=1 still_running=1: SIGKILL failed]
#         @runctl stopped=0 [stale_cleaned=1]             (nothing was running)
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 2 ] || die 2 "usage: stop.sh PROJECT WAIT_SECONDS"
PROJECT="$1"
WAIT="$2"
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"
is_uint "$WAIT" || die 2 "WAIT_SECONDS must be a whole number of seconds, got $(pct "$WAIT")"

now_ms() { date +%s%3N; }

stale_cleaned=0
lock_inspect
if [ "$L_STATE" = stale ]; then
  if lock_clean_stale; then stale_cleaned=1; fi
  lock_inspect
fi
if [ "$L_STATE" = starting ]; then lock_wait_pid; fi

if [ "$L_STATE" != running ]; then
  line="@runctl stopped=0"
  if [ "$L_STATE" = starting ]; then line+=" lock_state=starting lock_run_id=$(pct "$L_RUN")"; fi
  if [ "$stale_cleaned" = 1 ]; then line+=" stale_cleaned=1"; fi
  printf '%s\n' "$line"
  exit 0
fi

PID="$L_PID"
ST="$L_ST"
RUN="$L_RUN"
RUN_PROJECT="$L_PROJECT"
RUN_DIR="$RUNCTL_DIR/$RUN_PROJECT/runs/$RUN"

# SIGTERM to the training's main process (and the wrapper, which records the stop), never first
# to the whole group; then wait for the training to save and exit
signal_stop "$PID" "$ST" "$RUN_DIR"
t0="$(now_ms)"
deadline=$((t0 + WAIT * 1000))
while run_alive "$PID" "$ST" && [ "$(now_ms)" -lt "$deadline" ]; do
  sleep 0.1
done
elapsed=$(($(now_ms) - t0))

# the training exited, or the wait is over: end whatever is left of its group (workers, grandchildren,
# a training that did not finish in time), TERM then KILL, so that nothing keeps running, writing
# checkpoints after the listing below, or holding GPU memory
extra=""
if run_alive "$PID" "$ST"; then extra=" killed=1"; fi
end_group "$PID" || extra+=" group_survived=1"
if run_alive "$PID" "$ST"; then
  extra+=" still_running=1"
else
  # the wrapper could not record the end (killed with the group, or killed -9 earlier): record
  # it here and give the lock back for it
  if valid_name "$RUN" && valid_name "$RUN_PROJECT" && [ -d "$RUN_DIR" ] && [ ! -f "$RUN_DIR/exit_code" ]; then
    write_atomic "$RUN_DIR/ended_at" "$(now_epoch)"$'\n' || true
    write_atomic "$RUN_DIR/exit_code" 137$'\n' || true
    printf '[runctl] killed (SIGKILL) by stop after a %ss wait\n[runctl] exit code 137\n' "$WAIT" >>"$RUN_DIR/log" 2>/dev/null || true
  fi
  guard_lock
  if [ "$(read_first "$LOCK/owner")" = "$RUN" ]; then lock_remove || true; fi
  guard_unlock
fi

exit_code=""
if valid_name "$RUN" && valid_name "$RUN_PROJECT"; then exit_code="$(read_first "$RUN_DIR/exit_code")"; fi
printf '@runctl stopped=1 run_id=%s project=%s pid=%s exit_code=%s waited=%s.%s%s\n' \
  "$(pct "$RUN")" "$(pct "$RUN_PROJECT")" "${M_PID:-$PID}" "$exit_code" \
  "$((elapsed / 1000))" "$((elapsed % 1000 / 100))" "$extra"
exit 0
