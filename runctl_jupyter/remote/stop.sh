#!/usr/bin/env bash
# stop.sh PROJECT WAIT_SECONDS [--kill]
#
# Asks the training holding the instance's lock to stop: SIGTERM to its process group, then waits
# up to WAIT_SECONDS (0 = don't wait) for it to exit. With --kill, a training still alive after
# the wait gets SIGKILL (its run is then recorded with exit code 137 and the lock released).
# Then lists PROJECT's checkpoints (as checkpoints.sh) so the caller can upload them.
# env: RUNCTL_ROOT (default $HOME)
# stdout: @runctl stopped=1 run_id=… project=… pid=… exit_code=… waited=<seconds> [still_running=1]
#                 [killed=1]
#         @runctl stopped=0 [stale_cleaned=1]             (nothing was running)
#         then: @runctl checkpoint=… size=… md5=… mtime=… lines and @runctl count=N
# errors: one line on stderr, exit 2 (bad arguments)
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then die 2 "usage: stop.sh PROJECT WAIT_SECONDS [--kill]"; fi
PROJECT="$1"
WAIT="$2"
KILL=0
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"
is_uint "$WAIT" || die 2 "WAIT_SECONDS must be a whole number of seconds, got $(pct "$WAIT")"
if [ "$#" -eq 3 ]; then
  [ "$3" = --kill ] || die 2 "unknown option: $(pct "$3") (only --kill)"
  KILL=1
fi

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
  list_checkpoints "$PROJECT"
  exit 0
fi

PID="$L_PID"
ST="$L_ST"
RUN="$L_RUN"
RUN_PROJECT="$L_PROJECT"
RUN_DIR="$RUNCTL_DIR/$RUN_PROJECT/runs/$RUN"

# the training is the leader of its own process group (setsid): signal the whole group
kill -TERM -- "-$PID" 2>/dev/null || kill -TERM -- "$PID" 2>/dev/null || true
t0="$(now_ms)"
deadline=$((t0 + WAIT * 1000))
while pid_alive "$PID" "$ST" && [ "$(now_ms)" -lt "$deadline" ]; do
  sleep 0.1
done
elapsed=$(($(now_ms) - t0))

extra=""
if pid_alive "$PID" "$ST"; then
  if [ "$KILL" = 1 ]; then
    kill -KILL -- "-$PID" 2>/dev/null || kill -KILL -- "$PID" 2>/dev/null || true
    tries=50
    while pid_alive "$PID" "$ST" && [ "$tries" -gt 0 ]; do
      sleep 0.1
      tries=$((tries - 1))
    done
    extra=" killed=1"
    if pid_alive "$PID" "$ST"; then
      extra+=" still_running=1"
    else
      # the wrapper died with it: record the end and give the lock back for it
      if valid_name "$RUN" && valid_name "$RUN_PROJECT" && [ -d "$RUN_DIR" ] && [ ! -f "$RUN_DIR/exit_code" ]; then
        write_atomic "$RUN_DIR/ended_at" "$(now_epoch)"$'\n' || true
        write_atomic "$RUN_DIR/exit_code" 137$'\n' || true
        printf '[runctl] killed (SIGKILL) by stop --kill\n[runctl] exit code 137\n' >>"$RUN_DIR/log" 2>/dev/null || true
      fi
      guard_lock
      if [ "$(read_first "$LOCK/owner")" = "$RUN" ]; then lock_remove || true; fi
      guard_unlock
    fi
  else
    extra=" still_running=1"
  fi
fi

exit_code=""
if valid_name "$RUN" && valid_name "$RUN_PROJECT"; then exit_code="$(read_first "$RUN_DIR/exit_code")"; fi
printf '@runctl stopped=1 run_id=%s project=%s pid=%s exit_code=%s waited=%s.%s%s\n' \
  "$(pct "$RUN")" "$(pct "$RUN_PROJECT")" "$PID" "$exit_code" \
  "$((elapsed / 1000))" "$((elapsed % 1000 / 100))" "$extra"
list_checkpoints "$PROJECT"
exit 0
