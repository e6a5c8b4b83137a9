#!/usr/bin/env bash
# launch.sh PROJECT RUN_ID SCRIPT_RELPATH [SCRIPT_ARGS…]
#
# Claims the instance (ROOT/runctl/lock, mkdir = atomic) and starts SCRIPT_RELPATH (relative to
# the project's code dir) detached, in its own session, with byte-exact SCRIPT_ARGS.
# env: RUNCTL_ROOT (default $HOME), RUNCTL_PYTHON (the `python` setting / --python; without it the
#      image's PyTorch environment, else python3: see python_env.sh; the project's venv, built from that
#      interpreter for its requirements.txt, runs it), RUNCTL_CODE_DIR (default ROOT/runctl/PROJECT/code),
#      RUNCTL_META_JSON (written as meta.json, with "python" and "python_source" added),
#      RUNCTL_TORCHRUN (N or gpu: run the script under PyTorch's launcher, `PYTHON -m
#      torch.distributed.run --standalone --nproc-per-node=N SCRIPT ARGS…`; gpu = nvidia-smi's GPU count),
#      RUNCTL_RESUME_FROM (passed on to the training's environment),
#      RUNCTL_LOCK_WAIT (seconds to wait for a starting launcher's pid, default 5),
#      RUNCTL_LOCK_GRACE (age in seconds after which a lock without a pid is stale, default 30),
#      RUNCTL_START_WAIT (seconds to wait for the started wrapper to record its pid, default 10),
#      PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT (a fleet's node, with RUNCTL_TORCHRUN:
#      torchrun reads them itself, and runs without --standalone: the rendezvous is node 0's).
# The training runs as: setsid bash RUN_DIR/wrapper.sh … PY [-m torch.distributed.run …] SCRIPT ARGS… (cwd = code dir, stdin
# /dev/null, stdout+stderr appended to RUN_DIR/log, env RUNCTL_RUN_ID, RUNCTL_PROJECT,
# RUNCTL_CHECKPOINT_DIR, PYTHONUNBUFFERED=1). The wrapper records RUN_DIR/pid ("PID STARTTIME",
# also in the lock; the wrapper is its process group's leader), RUN_DIR/main_pid (the training's own
# process, the wrapper's child: under torchrun, torchrun itself, which stop and the guardian signal
# and which stops its workers), started_at/ended_at (epoch seconds), exit_code, appends
# "[runctl] exit code N" to the log and releases the lock if it still owns it. RUN_DIR/python: the
# interpreter (path, then how it was chosen: setting|image|system|venv).
# stdout: @runctl python=… python_source=setting|image|system|venv [python_base=…] [nproc=N]
#         @runctl started=1 run_id=… pid=<training> wrapper_pid=… log=… project=…   (exit 0)
#         @runctl refused=running pid=N run_id=… project=…            (exit 3, nothing changed)
#         @runctl refused=no_code | refused=no_script    (exit 2: nothing synced there / no such script)
#         @runctl refused=no_gpu | refused=no_torch      (exit 2: --nproc-per-node gpu without GPUs /
#                                                        torchrun without torch in the interpreter)
#         @runctl sync_failed=1 [sync_cause=download|unsafe_bundle|requirements]  (exit 4, see sync_apply.sh)
# errors: one line on stderr; exit 2 (bad arguments, missing script/python), 4 (could not claim/start)
# shellcheck disable=SC2329 # release_claim runs from a trap
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97
# shellcheck source=python_env.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/python_env.sh" || exit 97
# shellcheck source=gpu.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/gpu.sh" || exit 97

[ "$#" -ge 3 ] || die 2 "usage: launch.sh PROJECT RUN_ID SCRIPT_RELPATH [SCRIPT_ARGS...]"
PROJECT="$1"
RUN_ID="$2"
SCRIPT_REL="$3"
shift 3
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT") (use letters, digits, '.', '_', '-')"
valid_name "$RUN_ID" || die 2 "invalid run id: $(pct "$RUN_ID") (use letters, digits, '.', '_', '-')"
case "/$SCRIPT_REL/" in
  // | /-* | //* | */../*) die 2 "invalid script path: $(pct "$SCRIPT_REL") (give a path relative to the project's code directory)" ;;
esac
NPROC="${RUNCTL_TORCHRUN:-}"
case "$NPROC" in
  '' | gpu) ;;
  *) is_uint "$NPROC" && [ "${#NPROC}" -le 4 ] && [ "$((10#$NPROC))" -gt 0 ] ||
    die 2 "invalid RUNCTL_TORCHRUN: $(pct "$NPROC") (a number of processes per node, or gpu)" ;;
esac

PROJECT_DIR="$RUNCTL_DIR/$PROJECT"
CODE_DIR="${RUNCTL_CODE_DIR:-$PROJECT_DIR/code}"
RUN_DIR="$PROJECT_DIR/runs/$RUN_ID"
CK_DIR="$(checkpoint_dir "$PROJECT")"

refuse() {
  # name the training's own PID: a wrapper that has just started writes it within moments
  local tries=20
  while [ -z "${M_PID:-}" ] && [ "$tries" -gt 0 ] && valid_name "$L_PROJECT" && valid_name "$L_RUN"; do
    sleep 0.05
    tries=$((tries - 1))
    run_main "$RUNCTL_DIR/$L_PROJECT/runs/$L_RUN"
  done
  printf '@runctl refused=running pid=%s run_id=%s project=%s\n' \
    "${M_PID:-${L_PID:-0}}" "$(pct "$L_RUN")" "$(pct "$L_PROJECT")"
  exit 3
}

# --- a. the claim, before anything else changes -------------------------------------------
mkdir -p -- "$RUNCTL_DIR" || die 4 "cannot create $RUNCTL_DIR"
CLAIMED=0
HANDED_OVER=0
release_claim() {
  # on any exit before the wrapper took over: give the claim back (only if it is still ours)
  if [ "$CLAIMED" = 1 ] && [ "$HANDED_OVER" = 0 ]; then
    guard_lock
    if [ "$(read_first "$LOCK/owner")" = "$RUN_ID" ]; then lock_remove || true; fi
    guard_unlock
  fi
}
trap release_claim EXIT

attempt=0
while :; do
  if mkdir -- "$LOCK" 2>/dev/null; then
    CLAIMED=1
    write_atomic "$LOCK/owner" "$RUN_ID"$'\n'"$PROJECT"$'\n' || die 4 "cannot write $LOCK/owner"
    break
  fi
  attempt=$((attempt + 1))
  [ "$attempt" -le 3 ] || die 4 "could not claim $LOCK (it keeps changing); try again"
  lock_inspect
  if [ "$L_STATE" = starting ]; then lock_wait_pid; fi
  case "$L_STATE" in
    running | starting) refuse ;;
    stale) lock_clean_stale || true ;;
    absent) ;;
  esac
done

# --- code sync, only now that the claim is ours (a losing launch changes nothing) -------------
# RUNCTL_SYNC_URL (a presigned GET, never printed) + RUNCTL_SYNC_SHA256: apply that bundle with
# sync_apply.sh, shipped beside this script in $RUNCTL_SCRIPTS_DIR. Its full output (pip's too)
# goes into the run's log below; only its @runctl lines are printed.
SYNC_OUT=""
if [ -n "${RUNCTL_SYNC_URL:-}" ]; then
  [ -f "${RUNCTL_SCRIPTS_DIR:-}/sync_apply.sh" ] || die 4 "sync_apply.sh was not shipped with launch.sh"
  SYNC_OUT="$(mktemp "${TMPDIR:-/tmp}/runctl-sync.XXXXXX")" || die 4 "cannot create a temp file"
  if ! bash "$RUNCTL_SCRIPTS_DIR/sync_apply.sh" "$PROJECT" - "${RUNCTL_SYNC_SHA256:-}" >"$SYNC_OUT" 2>&1; then
    grep '^@runctl ' "$SYNC_OUT"
    printf '@runctl sync_failed=1\n'
    tail -n 3 -- "$SYNC_OUT" >&2
    rm -f -- "$SYNC_OUT"
    die 4 "code sync failed"
  fi
  grep '^@runctl ' "$SYNC_OUT"
fi

# --- resume (runctl guardian.py): fetch the checkpoint to resume from, now that the claim is ours ----
# RUNCTL_FETCH_URL (a presigned GET, never printed) + RUNCTL_FETCH_NAME: fetch_checkpoint.sh puts it in
# the checkpoint dir; the training gets its path as RUNCTL_RESUME_FROM.
if [ -n "${RUNCTL_FETCH_URL:-}" ]; then
  RUNCTL_RESUME_FROM="$(bash "${RUNCTL_SCRIPTS_DIR:-}/fetch_checkpoint.sh" "$PROJECT" "${RUNCTL_FETCH_NAME:-}")" ||
    die 4 "could not fetch the checkpoint to resume from"
  unset RUNCTL_FETCH_URL
fi

# --- checks that need the claim (failing them gives it back: see release_claim) ----------------
if [ ! -d "$CODE_DIR" ]; then
  printf '@runctl refused=no_code\n'
  die 2 "code directory not found: $CODE_DIR (sync the project first)"
fi
if [ ! -f "$CODE_DIR/$SCRIPT_REL" ]; then
  printf '@runctl refused=no_script\n'
  die 2 "script not found: $SCRIPT_REL in $CODE_DIR"
fi
[ ! -e "$RUN_DIR" ] || die 2 "run $RUN_ID already exists in $PROJECT_DIR/runs"
# the interpreter: the project's venv when runctl built it from this base (an older runctl's venv,
# which recorded no base, is kept); built again when it was made from another base
VENV="$PROJECT_DIR/venv"
REQ_OUT=""
if [ -x "$VENV/bin/python" ] && [ ! -f "$VENV/.runctl-base" ]; then
  PY="$VENV/bin/python" PY_SOURCE=venv PY_BASE=""
else
  python_base || die 2 "$PY_ERROR"
  PY="$PY_BASE"
  # (a requirements.txt synced into code/: `local train` runs the project folder itself, with no venv)
  if [ -f "$PROJECT_DIR/code/requirements.txt" ] && ! venv_base_matches "$VENV"; then
    REQ_OUT="$(mktemp "${TMPDIR:-/tmp}/runctl-req.XXXXXX")" || die 4 "cannot create a temp file"
    if ! install_requirements "$PROJECT_DIR" >"$REQ_OUT" 2>&1; then
      grep '^@runctl ' "$REQ_OUT"
      printf '@runctl sync_failed=1\n'
      tail -n 3 -- "$REQ_OUT" >&2
      rm -f -- "$REQ_OUT"
      die 4 "$PY_ERROR"
    fi
    grep '^@runctl ' "$REQ_OUT"
  fi
  if venv_base_matches "$VENV"; then PY="$VENV/bin/python" PY_SOURCE=venv; fi
fi
LAUNCHER=("$PY")
if [ -n "$NPROC" ]; then
  if [ "$NPROC" = gpu ]; then
    gpu_count
    if [ "$GPU_COUNT" -eq 0 ]; then
      printf '@runctl refused=no_gpu\n'
      die 2 "--nproc-per-node gpu: this instance shows no NVIDIA GPU (nvidia-smi missing or lists none)"
    fi
    NPROC="$GPU_COUNT"
  fi
  if ! python_has_torch "$PY" "$CODE_DIR"; then
    printf '@runctl refused=no_torch python=%s\n' "$(pct "$PY")"
    die 2 "torchrun needs PyTorch, and $PY has no torch"
  fi
  NPROC="$((10#$NPROC))"
  if [ -n "${PET_NNODES:-}" ]; then  # one node of a fleet: torchrun takes the rendezvous from PET_*
    LAUNCHER=("$PY" -m torch.distributed.run "--nproc-per-node=$NPROC")
  else
    LAUNCHER=("$PY" -m torch.distributed.run --standalone "--nproc-per-node=$NPROC")
  fi
fi
printf '@runctl python=%s python_source=%s%s%s\n' "$(pct "$PY")" "$PY_SOURCE" \
  "${PY_BASE:+ python_base=$(pct "$PY_BASE")}" "${NPROC:+ nproc=$NPROC}"

# --- b. the run directory, meta.json, the wrapper ----------------------------------------------
mkdir -p -- "$PROJECT_DIR/runs" "$CK_DIR" || die 4 "cannot create directories under $PROJECT_DIR"
mkdir -- "$RUN_DIR" || die 4 "cannot create $RUN_DIR"
LOG="$RUN_DIR/log"
: >>"$LOG" || die 4 "cannot write $LOG"
if [ -n "$SYNC_OUT" ]; then
  { printf '[runctl] code sync\n'; grep -v '^@runctl' "$SYNC_OUT"; } >>"$LOG"
  rm -f -- "$SYNC_OUT"
fi
if [ -n "$REQ_OUT" ]; then
  { printf '[runctl] project venv (on %s)\n' "$PY_BASE"; grep -v '^@runctl' "$REQ_OUT"; } >>"$LOG"
  rm -f -- "$REQ_OUT"
fi
if [ -n "${RUNCTL_META_JSON:-}" ]; then
  META="$RUNCTL_META_JSON"
else
  META="$("$PY" -I -S -c 'import json, sys
print(json.dumps({"run_id": sys.argv[1], "project": sys.argv[2], "script": sys.argv[3], "args": sys.argv[4:]}))' \
    "$RUN_ID" "$PROJECT" "$SCRIPT_REL" "$@" 2>/dev/null)" || META='{}'
fi
# which interpreter ran (and torchrun's processes), added to the object the caller gave
extra="\"python\": $(json_str "$PY"), \"python_source\": \"$PY_SOURCE\"${NPROC:+, \"nproc_per_node\": $NPROC}}"
META="${META%"${META##*[![:space:]]}"}"
case "$META" in
  *[![:space:]]*'}') if [ "${META//[[:space:]]/}" = '{}' ]; then META="{$extra"; else META="${META%\}}, $extra"; fi ;;
esac
write_atomic "$RUN_DIR/meta.json" "$META"$'\n' || die 4 "cannot write $RUN_DIR/meta.json"
write_atomic "$RUN_DIR/python" "$PY"$'\n'"$PY_SOURCE"$'\n' || die 4 "cannot write $RUN_DIR/python"

WRAPPER="$RUN_DIR/wrapper.sh"
cat >"$WRAPPER" <<'RUNCTL_WRAPPER_END' || die 4 "cannot write $WRAPPER"
# runctl wrapper: runs the training in its own session, then records how it ended.
# argv: N [AS-USER PREFIX (N words)] M [LAUNCHER (M words: PYTHON, or PYTHON -m torch.distributed.run
# --standalone --nproc-per-node=K)] SCRIPT [ARGS…] (byte-exact); env: RUNCTL_W_RUN_DIR,
# RUNCTL_W_LOCK, RUNCTL_W_GUARD. The wrapper keeps runctl's user (it gives the claim back); the
# training runs through the prefix (setpriv: as the login user, same PID).
set -u
run_dir="$RUNCTL_W_RUN_DIR"
lock="$RUNCTL_W_LOCK"
guard="$RUNCTL_W_GUARD"
run_id="$RUNCTL_RUN_ID"
unset RUNCTL_W_RUN_DIR RUNCTL_W_LOCK RUNCTL_W_GUARD
# stop sends SIGTERM to the training's main process and to this wrapper (never first to the whole
# group: DataLoader workers would die before the training saves): the wrapper records the stop and
# goes on waiting, to record the exit code
# shellcheck disable=SC2329 # runs from the trap
on_term() {
  # remembered beside the exit code: `runs` and status say "stopped", not just "exit 0"
  put "$run_dir/stop_signal" "$(date +%s)"
  printf '[runctl] received SIGTERM (stop requested)\n'
}
trap on_term TERM

put() { printf '%s' "$2" >"$1.tmp.$$" && mv -f -- "$1.tmp.$$" "$1"; }
stat_line="$(cat "/proc/$$/stat")"
rest="${stat_line##*) }"
read -r -a f <<<"$rest"
me="$$ ${f[19]}"$'\n'
put "$run_dir/started_at" "$(date +%s)"$'\n'
put "$run_dir/pid" "$me"
owner=""
IFS= read -r owner 2>/dev/null <"$lock/owner" || true
if [ "$owner" = "$run_id" ]; then put "$lock/pid" "$me"; fi

as_user=("${@:2:$1}")
shift "$(($1 + 1))"
launcher=("${@:2:$1}")
shift "$(($1 + 1))"
script="$1"
shift
"${as_user[@]}" "${launcher[@]}" "$script" "$@" </dev/null &
main=$!
# the training's own process (PID + start time): what stop signals, what `aws status` shows (under
# torchrun, torchrun: it passes the SIGTERM on to its workers and waits for them)
main_stat="$(cat "/proc/$main/stat" 2>/dev/null)" || main_stat=""
read -r -a f <<<"${main_stat##*) }"
put "$run_dir/main_pid" "$main ${f[19]:-}"$'\n'
printf '[runctl] run %s: pid %s (wrapper pid %s)\n' "$run_id" "$main" "$$"
while :; do
  wait "$main"
  rc=$?
  # a trapped SIGTERM ends `wait` early (rc > 128) while the training is still saving: wait again
  # while /proc still shows that same process (same start time; a zombie's status is still to come)
  [ "$rc" -gt 128 ] || break
  now_stat="$(cat "/proc/$main/stat" 2>/dev/null)" || now_stat=""
  read -r -a g <<<"${now_stat##*) }"
  [ -n "$now_stat" ] && [ "${g[19]:-}" = "${f[19]:-}" ] && continue
  wait "$main" # it ended meanwhile and bash reaped it: its own status (bash keeps it)
  rc=$?
  break
done

put "$run_dir/ended_at" "$(date +%s)"$'\n'
put "$run_dir/exit_code" "$rc"$'\n'
printf '[runctl] exit code %s\n' "$rc"
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$guard" && flock -w 10 9
fi
owner=""
IFS= read -r owner 2>/dev/null <"$lock/owner" || true
if [ "$owner" = "$run_id" ]; then
  aside="$lock.released.$$.$RANDOM"
  mv -T -- "$lock" "$aside" && rm -rf -- "$aside"
fi
exit "$rc"
RUNCTL_WRAPPER_END

# --- who it runs as: on AWS (root, no HOME) the login user, owning runctl's folder
# (before the guardian's secrets are written: they stay root's) ---------------
run_as_setup || die 4 "cannot hand $RUNCTL_DIR to the user the training runs as"
if [ -d "$PROJECT_DIR/venv/bin" ]; then RUN_PATH="$PROJECT_DIR/venv/bin:$RUN_PATH"; fi

# --- guardian (runctl guardian.py), part 1: its secrets go into files, out of the training's env ---
if [ -n "${RUNCTL_GUARDIAN:-}" ]; then
  bash "${RUNCTL_SCRIPTS_DIR:-}/guardian.sh" --install "$PROJECT" "$RUN_ID" || die 4 "cannot set up the guardian"
  unset RUNCTL_G_S3POST RUNCTL_G_STOP RUNCTL_G_TERMINATE RUNCTL_G_FLEETPOST RUNCTL_G_FLEETLIST RUNCTL_G_FLEETPEERS
fi

# --- start it: own session (setsid), cwd = code dir, stdin /dev/null, output appended to log --
(
  cd -- "$CODE_DIR" || exit 97
  export RUNCTL_RUN_ID="$RUN_ID" RUNCTL_PROJECT="$PROJECT" RUNCTL_CHECKPOINT_DIR="$CK_DIR"
  # a login-like environment: git, pip, wandb and Hugging Face caches need HOME
  export HOME="$RUN_HOME" USER="$RUN_USER" LOGNAME="$RUN_USER" PATH="$RUN_PATH"
  export PYTHONUNBUFFERED=1
  export RUNCTL_W_RUN_DIR="$RUN_DIR" RUNCTL_W_LOCK="$LOCK" RUNCTL_W_GUARD="$GUARD"
  if [ -n "${RUNCTL_RESUME_FROM:-}" ]; then export RUNCTL_RESUME_FROM; fi
  # nothing else of runctl's reaches the training: presigned URLs (RUNCTL_SYNC_URL, RUNCTL_FETCH_URL)
  # are secrets, and a script that prints its environment would put them in the run's log
  # (RUNCTL_SANDBOX_INSTANCE/_DIR exist only in the sandbox: the marks by which it finds an instance's
  # processes, to end them when the instance stops as AWS does; they are not secrets)
  for var in $(compgen -v RUNCTL_); do
    case "$var" in
      RUNCTL_RUN_ID | RUNCTL_PROJECT | RUNCTL_CHECKPOINT_DIR | RUNCTL_RESUME_FROM | RUNCTL_W_*) ;;
      RUNCTL_SANDBOX_INSTANCE | RUNCTL_SANDBOX_DIR) ;;
      *) unset "$var" ;;
    esac
  done
  exec setsid bash "$WRAPPER" "${#RUN_AS[@]}" "${RUN_AS[@]}" "${#LAUNCHER[@]}" "${LAUNCHER[@]}" "$SCRIPT_REL" "$@"
) </dev/null >>"$LOG" 2>&1 9>&- &
HANDED_OVER=1

# the wrapper records its pid (= process group id) and start time itself
tries=$((${RUNCTL_START_WAIT:-10} * 20))
while [ ! -f "$RUN_DIR/pid" ] && [ "$tries" -gt 0 ]; do
  sleep 0.05
  tries=$((tries - 1))
done
[ -f "$RUN_DIR/pid" ] || die 4 "training did not start (see $LOG)"
read -r PID _ 2>/dev/null <"$RUN_DIR/pid" || true
# the training's own PID (the wrapper's child), the one a user would `kill` or look for in top
tries=$((${RUNCTL_START_WAIT:-10} * 20))
while [ ! -f "$RUN_DIR/main_pid" ] && [ "$tries" -gt 0 ]; do
  sleep 0.05
  tries=$((tries - 1))
done
MAIN_PID="$PID"
if [ -f "$RUN_DIR/main_pid" ]; then read -r MAIN_PID _ 2>/dev/null <"$RUN_DIR/main_pid" || MAIN_PID="$PID"; fi
# --- guardian, part 2: started beside the training, detached (its copy in the run dir) -------------
if [ -n "${RUNCTL_GUARDIAN:-}" ]; then
  (cd / && exec setsid bash "$RUN_DIR/guardian.sh" "$PROJECT" "$RUN_ID") </dev/null >>"$RUN_DIR/guardian.log" 2>&1 9>&- &
  printf '@runctl guardian=1\n'
fi
printf '@runctl started=1 run_id=%s pid=%s wrapper_pid=%s log=%s project=%s\n' \
  "$(pct "$RUN_ID")" "$MAIN_PID" "$PID" "$(pct "$LOG")" "$(pct "$PROJECT")"
exit 0
