#!/usr/bin/env bash
# launch.sh PROJECT RUN_ID SCRIPT_RELPATH [SCRIPT_ARGS…]
#
# Claims the instance (ROOT/runctl/lock, mkdir = atomic) and starts SCRIPT_RELPATH (relative to
# the project's code dir) detached, in its own session, with byte-exact SCRIPT_ARGS.
# env: RUNCTL_ROOT (default $HOME), RUNCTL_PYTHON (default python3; ROOT/runctl/PROJECT/venv/bin/python
#      wins when it exists), RUNCTL_CODE_DIR (default ROOT/runctl/PROJECT/code), RUNCTL_META_JSON
#      (written as meta.json), RUNCTL_RESUME_FROM (passed on to the training's environment),
#      RUNCTL_LOCK_WAIT (seconds to wait for a starting launcher's pid, default 5),
#      RUNCTL_LOCK_GRACE (age in seconds after which a lock without a pid is stale, default 30),
#      RUNCTL_START_WAIT (seconds to wait for the started wrapper to record its pid, default 10).
# The training runs as: setsid bash RUN_DIR/wrapper.sh PY SCRIPT ARGS… (cwd = code dir, stdin
# /dev/null, stdout+stderr appended to RUN_DIR/log, env RUNCTL_RUN_ID, RUNCTL_PROJECT,
# RUNCTL_CHECKPOINT_DIR, PYTHONUNBUFFERED=1). The wrapper records RUN_DIR/pid ("PID STARTTIME",
# also in the lock), started_at/ended_at (epoch seconds), exit_code, appends
# "[runctl] exit code N" to the log and releases the lock if it still owns it.
# stdout: @runctl started=1 run_id=… pid=… log=… project=…          (exit 0)
#         @runctl refused=running pid=N run_id=… project=…            (exit 3, nothing changed)
# errors: one line on stderr; exit 2 (bad arguments, missing script/python), 4 (could not claim/start)
# shellcheck disable=SC2329 # shared helpers; release_claim runs from a trap
set -u
# --- runctl common begin (identical in every remote script; tests check that) ---
# (the helpers are shared: not every script calls every one of them)
ROOT="${RUNCTL_ROOT:-${HOME:-}}"
RUNCTL_DIR="$ROOT/runctl"
LOCK="$RUNCTL_DIR/lock"
GUARD="$RUNCTL_DIR/.lock.guard"
if [ -z "$ROOT" ]; then
  printf 'runctl: neither RUNCTL_ROOT nor HOME is set\n' >&2
  exit 2
fi

die() {
  # die EXIT_CODE MESSAGE… : one line on stderr, then exit
  local code="$1"
  shift
  printf 'runctl: %s\n' "$*" >&2
  exit "$code"
}

pct() {
  # %-encode like urllib.parse.quote(s, safe=""): every byte outside [A-Za-z0-9_.~-] becomes %XX
  local LC_ALL=C
  local s="$1" out="" c n i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-]) out+="$c" ;;
      *)
        printf -v n '%d' "'$c"
        if ((n < 0)); then n=$((n + 256)); fi
        printf -v c '%%%02X' "$n"
        out+="$c"
        ;;
    esac
  done
  printf '%s' "$out"
}

valid_name() {
  # a project name or run id: one path component of [A-Za-z0-9._-], at most 128 bytes, not . or ..
  local LC_ALL=C
  case "$1" in
    '' | . | .. | -* | *[!ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-]*) return 1 ;;
  esac
  [ "${#1}" -le 128 ]
}

is_uint() {
  case "$1" in
    '' | *[!0123456789]*) return 1 ;;
  esac
  return 0
}

proc_start() {
  # proc_start PID: print the process start time (/proc/PID/stat field 22); fail if the
  # process does not exist or is a zombie
  local pid="$1" stat rest
  is_uint "$pid" && [ "$pid" -gt 0 ] || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ -n "$stat" ] || return 1
  rest="${stat##*) }"
  local -a f
  read -r -a f <<<"$rest"
  # f[0] is field 3 (state), so field 22 (starttime) is f[19]
  case "${f[0]:-}" in Z | X | x | '') return 1 ;; esac
  [ -n "${f[19]:-}" ] || return 1
  printf '%s' "${f[19]}"
}

pid_alive() {
  # pid_alive PID STARTTIME: the process runs and is the same one (not a reused PID)
  local now
  now="$(proc_start "$1")" || return 1
  [ -n "$2" ] && [ "$now" = "$2" ]
}

now_epoch() { date +%s; }

iso() {
  # iso EPOCH -> 2024-01-02T03:04:05Z (empty for empty input)
  is_uint "${1:-}" || return 0
  date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}

read_first() {
  # read_first FILE: print the first line of FILE (empty if missing)
  local line=""
  [ -f "$1" ] || return 0
  IFS= read -r line 2>/dev/null <"$1" || true
  printf '%s' "$line"
}

write_atomic() {
  # write_atomic FILE TEXT: write TEXT to FILE.tmp.$$ then rename over FILE
  local tmp="$1.tmp.$$"
  printf '%s' "$2" >"$tmp" && mv -f -- "$tmp" "$1"
}

guard_lock() {
  # serialize lock cleaning/releasing between runctl scripts (flock on fd 9, if flock exists)
  if command -v flock >/dev/null 2>&1 && [ -d "$RUNCTL_DIR" ]; then
    exec 9>>"$GUARD" || return 0
    flock -w 10 9 || true
  fi
}

guard_unlock() { exec 9>&-; }

# shellcheck disable=SC2034 # L_* are results for the caller
lock_inspect() {
  # sets L_STATE (absent|running|starting|stale), L_PID, L_ST, L_RUN, L_PROJECT
  L_STATE=absent L_PID="" L_ST="" L_RUN="" L_PROJECT=""
  [ -d "$LOCK" ] || return 0
  if [ -f "$LOCK/owner" ]; then
    { IFS= read -r L_RUN || true; IFS= read -r L_PROJECT || true; } 2>/dev/null <"$LOCK/owner"
  fi
  if [ -f "$LOCK/pid" ]; then
    read -r L_PID L_ST _ 2>/dev/null <"$LOCK/pid" || true
    if pid_alive "$L_PID" "$L_ST"; then L_STATE=running; else L_STATE=stale; fi
  else
    local mtime age
    mtime="$(stat -c %Y -- "$LOCK" 2>/dev/null)" || { L_STATE=absent; return 0; }
    age=$(($(now_epoch) - mtime))
    if [ "$age" -lt "${RUNCTL_LOCK_GRACE:-30}" ]; then L_STATE=starting; else L_STATE=stale; fi
  fi
  [ -d "$LOCK" ] || L_STATE=absent
  return 0
}

lock_remove() {
  # rename the lock aside (atomic) and delete it
  local aside
  aside="$RUNCTL_DIR/.lock.removed.$$.$RANDOM$RANDOM"
  mv -T -- "$LOCK" "$aside" 2>/dev/null || return 1
  rm -rf -- "$aside"
}

lock_clean_stale() {
  # remove the lock if (re-checked under the guard) it is still stale and still the same one
  local run="$L_RUN" pid="$L_PID" rc=1
  guard_lock
  lock_inspect
  if [ "$L_STATE" = stale ] && [ "$L_RUN" = "$run" ] && [ "$L_PID" = "$pid" ]; then
    lock_remove && rc=0
  fi
  guard_unlock
  return "$rc"
}

lock_wait_pid() {
  # a lock without a pid belongs to a launcher that is starting: give it a moment
  local tries=$((${RUNCTL_LOCK_WAIT:-5} * 20))
  while [ "$tries" -gt 0 ] && [ -d "$LOCK" ] && [ ! -f "$LOCK/pid" ]; do
    sleep 0.05
    tries=$((tries - 1))
  done
  lock_inspect
}

checkpoint_dir() { printf '%s' "$RUNCTL_DIR/$1/checkpoints"; }

is_partial() {
  # a temporary file of an atomic write in progress (.NAME.tmp…)
  case "${1##*/}" in .*.tmp*) return 0 ;; esac
  return 1
}

newest_checkpoint() {
  # newest_checkpoint DIR [FROM_EPOCH [TO_EPOCH]]: relpath of the newest checkpoint file whose
  # mtime lies in [FROM, TO] (empty if none)
  local dir="$1" from="${2:-0}" to="${3:-}" best="" best_t=-1 rec t p s frac
  [ -d "$dir" ] || return 0
  while IFS= read -r -d '' rec; do
    t="${rec%% *}"
    p="${rec#* }"
    is_partial "$p" && continue
    s="${t%%.*}"
    frac=""
    case "$t" in *.*) frac="${t#*.}" ;; esac
    frac="${frac}000000"
    frac="${frac:0:6}"
    if ! is_uint "$s" || ! is_uint "$frac"; then continue; fi
    if [ -n "$from" ] && [ "$s" -lt "$from" ]; then continue; fi
    if [ -n "$to" ] && [ "$s" -gt "$to" ]; then continue; fi
    t=$((s * 1000000 + 10#$frac))
    if [ "$t" -ge "$best_t" ]; then
      best_t="$t"
      best="$p"
    fi
  done < <(find "$dir" -type f -printf '%T@ %P\0' 2>/dev/null)
  printf '%s' "$best"
}

list_checkpoints() {
  # list_checkpoints PROJECT: @runctl checkpoint=… size=… md5=… mtime=… lines, then count=N
  local dir p f size mtime sum count=0
  dir="$(checkpoint_dir "$1")"
  if [ -d "$dir" ]; then
    while IFS= read -r -d '' p; do
      is_partial "$p" && continue
      f="$dir/$p"
      [ -f "$f" ] || continue
      read -r size mtime < <(stat -c '%s %Y' -- "$f") || continue
      read -r sum _ < <(md5sum <"$f") || continue
      printf '@runctl checkpoint=%s size=%s md5=%s mtime=%s\n' "$(pct "$p")" "$size" "$sum" "$mtime"
      count=$((count + 1))
    done < <(find "$dir" -type f -printf '%P\0' 2>/dev/null | LC_ALL=C sort -z)
  fi
  printf '@runctl count=%s\n' "$count"
}

# shellcheck disable=SC2034 # R_* are results for the caller
run_state() {
  # run_state RUN_DIR: sets R_STATE (running|exited|none), R_PID, R_EXIT, R_LOST
  local dir="$1" st=""
  R_STATE=none R_PID="" R_EXIT="" R_LOST=""
  [ -d "$dir" ] || return 0
  R_EXIT="$(read_first "$dir/exit_code")"
  if [ -f "$dir/pid" ]; then read -r R_PID st _ <"$dir/pid" || true; fi
  if [ -n "$R_PID" ] && pid_alive "$R_PID" "$st"; then
    R_STATE=running
  elif [ -n "$R_EXIT" ]; then
    R_STATE=exited
  elif [ -z "$R_PID" ] && [ -d "$LOCK" ] && [ "$(read_first "$LOCK/owner")" = "${dir##*/}" ]; then
    R_STATE=running # its launcher is still starting it
  else
    R_STATE=exited
    R_LOST=1 # the process is gone without recording an exit code (killed, instance rebooted)
  fi
}
runs_sorted() {
  # runs_sorted PROJECT: RUNS_SORTED=(run ids, oldest first by meta.json mtime, else dir mtime)
  local runs="$RUNCTL_DIR/$1/runs" t id
  RUNS_SORTED=()
  [ -d "$runs" ] || return 0
  while read -r t id; do
    RUNS_SORTED+=("$id")
  done < <(
    find "$runs" -mindepth 1 -maxdepth 1 -type d -printf '%f\0' 2>/dev/null |
      while IFS= read -r -d '' id; do
        valid_name "$id" || continue
        if [ -f "$runs/$id/meta.json" ]; then
          t="$(find "$runs/$id/meta.json" -maxdepth 0 -printf '%T@' 2>/dev/null)"
        else
          t="$(find "$runs/$id" -maxdepth 0 -printf '%T@' 2>/dev/null)"
        fi
        printf '%s %s\n' "${t:-0}" "$id"
      done | LC_ALL=C sort -n -k1,1 -k2,2
  )
}

run_fields() {
  # run_fields PROJECT RUN_ID: the common part of a run's @runctl line (after run_state)
  local dir="$RUNCTL_DIR/$1/runs/$2" started ended size=0 last
  started="$(read_first "$dir/started_at")"
  ended="$(read_first "$dir/ended_at")"
  if [ -f "$dir/log" ]; then size="$(stat -c %s -- "$dir/log" 2>/dev/null || printf 0)"; fi
  last=""
  if [ -n "$started" ]; then
    if [ "$R_STATE" = running ]; then
      last="$(newest_checkpoint "$(checkpoint_dir "$1")" "$started")"
    else
      last="$(newest_checkpoint "$(checkpoint_dir "$1")" "$started" "${ended:-$started}")"
    fi
  fi
  printf 'state=%s pid=%s exit_code=%s log_size=%s started=%s ended=%s last_checkpoint=%s' \
    "$R_STATE" "$R_PID" "$R_EXIT" "$size" "$(iso "$started")" "$(iso "$ended")" "$(pct "$last")"
  if [ -n "$R_LOST" ]; then printf ' lost=1'; fi
}
# --- runctl common end ---

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

PROJECT_DIR="$RUNCTL_DIR/$PROJECT"
CODE_DIR="${RUNCTL_CODE_DIR:-$PROJECT_DIR/code}"
RUN_DIR="$PROJECT_DIR/runs/$RUN_ID"
CK_DIR="$(checkpoint_dir "$PROJECT")"

refuse() {
  printf '@runctl refused=running pid=%s run_id=%s project=%s\n' \
    "${L_PID:-0}" "$(pct "$L_RUN")" "$(pct "$L_PROJECT")"
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
[ -d "$CODE_DIR" ] || die 2 "code directory not found: $CODE_DIR (sync the project first)"
[ -f "$CODE_DIR/$SCRIPT_REL" ] || die 2 "script not found: $SCRIPT_REL in $CODE_DIR"
[ ! -e "$RUN_DIR" ] || die 2 "run $RUN_ID already exists in $PROJECT_DIR/runs"
if [ -x "$PROJECT_DIR/venv/bin/python" ]; then
  PY="$PROJECT_DIR/venv/bin/python"
else
  PY="${RUNCTL_PYTHON:-python3}"
  case "$PY" in
    */*) [ -x "$PY" ] || die 2 "python not found: $PY (set RUNCTL_PYTHON to an installed interpreter)" ;;
    *) command -v -- "$PY" >/dev/null 2>&1 ||
      die 2 "$PY not found on the instance: install python3 or set RUNCTL_PYTHON" ;;
  esac
fi

# --- b. the run directory, meta.json, the wrapper ----------------------------------------------
mkdir -p -- "$PROJECT_DIR/runs" "$CK_DIR" || die 4 "cannot create directories under $PROJECT_DIR"
mkdir -- "$RUN_DIR" || die 4 "cannot create $RUN_DIR"
LOG="$RUN_DIR/log"
: >>"$LOG" || die 4 "cannot write $LOG"
if [ -n "$SYNC_OUT" ]; then
  { printf '[runctl] code sync\n'; grep -v '^@runctl' "$SYNC_OUT"; } >>"$LOG"
  rm -f -- "$SYNC_OUT"
fi
if [ -n "${RUNCTL_META_JSON:-}" ]; then
  META="$RUNCTL_META_JSON"
else
  META="$("$PY" -I -S -c 'import json, sys
print(json.dumps({"run_id": sys.argv[1], "project": sys.argv[2], "script": sys.argv[3], "args": sys.argv[4:]}))' \
    "$RUN_ID" "$PROJECT" "$SCRIPT_REL" "$@" 2>/dev/null)" || META='{}'
fi
write_atomic "$RUN_DIR/meta.json" "$META"$'\n' || die 4 "cannot write $RUN_DIR/meta.json"

WRAPPER="$RUN_DIR/wrapper.sh"
cat >"$WRAPPER" <<'RUNCTL_WRAPPER_END' || die 4 "cannot write $WRAPPER"
# runctl wrapper: runs the training in its own session, then records how it ended.
# argv: PYTHON SCRIPT [ARGS…] (byte-exact); env: RUNCTL_W_RUN_DIR, RUNCTL_W_LOCK, RUNCTL_W_GUARD
set -u
run_dir="$RUNCTL_W_RUN_DIR"
lock="$RUNCTL_W_LOCK"
guard="$RUNCTL_W_GUARD"
run_id="$RUNCTL_RUN_ID"
unset RUNCTL_W_RUN_DIR RUNCTL_W_LOCK RUNCTL_W_GUARD
# stop sends SIGTERM to the whole process group: the wrapper outlives it to record the exit code
trap 'printf "[runctl] received SIGTERM (stop requested)\n"' TERM

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

py="$1"
script="$2"
shift 2
printf '[runctl] run %s: pid %s\n' "$run_id" "$$"
"$py" "$script" "$@" </dev/null
rc=$?

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

# --- guardian (runctl guardian.py), part 1: its secrets go into files, out of the training's env ---
if [ -n "${RUNCTL_GUARDIAN:-}" ]; then
  bash "${RUNCTL_SCRIPTS_DIR:-}/guardian.sh" --install "$PROJECT" "$RUN_ID" || die 4 "cannot set up the guardian"
  unset RUNCTL_G_S3POST RUNCTL_G_STOP RUNCTL_G_TERMINATE
fi

# --- start it: own session (setsid), cwd = code dir, stdin /dev/null, output appended to log --
(
  cd -- "$CODE_DIR" || exit 97
  export RUNCTL_RUN_ID="$RUN_ID" RUNCTL_PROJECT="$PROJECT" RUNCTL_CHECKPOINT_DIR="$CK_DIR"
  export PYTHONUNBUFFERED=1
  export RUNCTL_W_RUN_DIR="$RUN_DIR" RUNCTL_W_LOCK="$LOCK" RUNCTL_W_GUARD="$GUARD"
  if [ -n "${RUNCTL_RESUME_FROM:-}" ]; then export RUNCTL_RESUME_FROM; fi
  unset RUNCTL_META_JSON RUNCTL_CODE_DIR
  exec setsid bash "$WRAPPER" "$PY" "$SCRIPT_REL" "$@"
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
# --- guardian, part 2: started beside the training, detached (its copy in the run dir) -------------
if [ -n "${RUNCTL_GUARDIAN:-}" ]; then
  (cd / && exec setsid bash "$RUN_DIR/guardian.sh" "$PROJECT" "$RUN_ID") </dev/null >>"$RUN_DIR/guardian.log" 2>&1 9>&- &
  printf '@runctl guardian=1\n'
fi
printf '@runctl started=1 run_id=%s pid=%s log=%s project=%s\n' \
  "$(pct "$RUN_ID")" "$PID" "$(pct "$LOG")" "$(pct "$PROJECT")"
exit 0
