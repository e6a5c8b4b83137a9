#!/usr/bin/env bash
# guardian.sh PROJECT RUN_ID            watch a run (started detached by launch.sh, beside the training)
# guardian.sh --install PROJECT RUN_ID  (launch.sh, before the training starts) copy this script into
#                                       the run dir and move the secrets from the environment into files
#
# Independent of the notebook: polls IMDSv2 (PUT /latest/api/token, then GET
# /latest/meta-data/spot/instance-action with the token) at ${RUNCTL_IMDS_ENDPOINT:-http://169.254.169.254}
# every RUNCTL_GUARDIAN_POLL seconds (default 5), and watches the training (RUN_DIR/pid) and the clock.
#   spot notice  → SIGTERM the training's process group, wait (bounded) for it to exit, upload the newest
#                  checkpoint, record it, exit (AWS takes the instance).
#   autostop     → the training has ended (or another run's claim is gone) for RUNCTL_GUARDIAN_AUTOSTOP
#                  seconds: upload the newest checkpoint, stop (or terminate) the instance, exit.
#   budget cap   → the run's elapsed time ≥ RUNCTL_GUARDIAN_MAX_SECONDS, or elapsed × RUNCTL_PRICE_PER_HOUR
#                  ≥ RUNCTL_GUARDIAN_MAX_COST: SIGTERM, wait, upload, then stop (or terminate) the instance.
# Other env: RUNCTL_GUARDIAN_SPOT (1 = watch spot notices, default 1), RUNCTL_GUARDIAN_END (stop|terminate:
#   what ends the instance; terminate for a one-time spot instance), RUNCTL_GUARDIAN_TERM_WAIT (seconds to
#   wait for the training after SIGTERM, default 90: well inside a spot notice's 2 minutes),
#   RUNCTL_GUARDIAN_START_WAIT (seconds to wait for the training's pid, default 30),
#   RUNCTL_GUARDIAN_BUCKET + RUNCTL_GUARDIAN_ROLE=1 (upload with the instance role via the AWS CLI when it
#   is installed), RUNCTL_GUARDIAN_ALLOW_SHUTDOWN=1 (AWS only: without a usable presigned EC2 call, end the
#   instance with ${RUNCTL_SHUTDOWN_CMD:-shutdown -h now}; never in the sandbox).
# Secrets (--install reads them from the environment, writes them to RUN_DIR/.guardian/, mode 600, and
#   launch.sh unsets them before the training starts; they never appear in argv or in a log):
#   RUNCTL_G_S3POST   curl config: a presigned S3 POST (url + form fields) whose policy allows any key
#                     under runctl/PROJECT/checkpoints/RUN_ID/
#   RUNCTL_G_STOP, RUNCTL_G_TERMINATE   curl config: a presigned EC2 StopInstances/TerminateInstances GET
# Records: RUN_DIR/guardian.json (what it watches, what it did), RUN_DIR/guardian.fields (the same as one
#   "@runctl k=v …" line for guardian_status.sh), a "[runctl guardian] …" line in RUN_DIR/log per action.
# shellcheck disable=SC2329 # shared helpers
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

INSTALL=0
if [ "${1:-}" = --install ]; then
  INSTALL=1
  shift
fi
[ "$#" -eq 2 ] || die 2 "usage: guardian.sh [--install] PROJECT RUN_ID"
PROJECT="$1"
RUN_ID="$2"
valid_name "$PROJECT" || die 2 "invalid project name: $(pct "$PROJECT")"
valid_name "$RUN_ID" || die 2 "invalid run id: $(pct "$RUN_ID")"
RUN_DIR="$RUNCTL_DIR/$PROJECT/runs/$RUN_ID"
CK_DIR="$(checkpoint_dir "$PROJECT")"
LOG="$RUN_DIR/log"
SECRETS="$RUN_DIR/.guardian"
STATE="$RUN_DIR/guardian.json"
FIELDS="$RUN_DIR/guardian.fields"
KEY_PREFIX="runctl/$PROJECT/checkpoints/$RUN_ID/"

if [ "$INSTALL" = 1 ]; then
  [ -d "$RUN_DIR" ] || die 2 "run directory not found: $RUN_DIR"
  cp -- "$0" "$RUN_DIR/guardian.sh" || die 4 "cannot copy the guardian into $RUN_DIR"
  (
    umask 077
    mkdir -p -- "$SECRETS" && chmod 700 -- "$SECRETS" || exit 4
    for name in s3post stop terminate; do
      case "$name" in
        s3post) value="${RUNCTL_G_S3POST:-}" ;;
        stop) value="${RUNCTL_G_STOP:-}" ;;
        *) value="${RUNCTL_G_TERMINATE:-}" ;;
      esac
      if [ -n "$value" ]; then printf '%s\n' "$value" >"$SECRETS/$name.curl" || exit 4; fi
    done
  ) || die 4 "cannot write the guardian's files in $SECRETS"
  exit 0
fi

POLL="${RUNCTL_GUARDIAN_POLL:-5}"
SPOT="${RUNCTL_GUARDIAN_SPOT:-1}"
AUTOSTOP="${RUNCTL_GUARDIAN_AUTOSTOP:-}"
MAX_SECONDS="${RUNCTL_GUARDIAN_MAX_SECONDS:-}"
MAX_COST="${RUNCTL_GUARDIAN_MAX_COST:-}"
PRICE="${RUNCTL_PRICE_PER_HOUR:-}"
TERM_WAIT="${RUNCTL_GUARDIAN_TERM_WAIT:-90}"
END="${RUNCTL_GUARDIAN_END:-stop}"
IMDS="${RUNCTL_IMDS_ENDPOINT:-http://169.254.169.254}"
IMDS="${IMDS%/}"
case "$END" in stop | terminate) ;; *) die 2 "RUNCTL_GUARDIAN_END must be stop or terminate" ;; esac
[ -d "$RUN_DIR" ] || die 2 "run directory not found: $RUN_DIR"

now_f() { date +%s.%N; }
# fge A B: A >= B (decimal numbers)
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
cost_of() { awk -v s="$1" -v p="$2" 'BEGIN { printf "%.4f", s * p / 3600 }'; }
is_num() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }
for v in "$POLL" "$TERM_WAIT" ${AUTOSTOP:+"$AUTOSTOP"} ${MAX_SECONDS:+"$MAX_SECONDS"} ${MAX_COST:+"$MAX_COST"} ${PRICE:+"$PRICE"}; do
  is_num "$v" || die 2 "not a number: $(pct "$v")"
done

json_str() {
  # a JSON string literal (quotes, backslashes and control characters escaped)
  local s="$1" out="" c i n
  local LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      '"') out+='\"' ;;
      '\') out+='\\' ;;
      *)
        printf -v n '%d' "'$c"
        if ((n >= 0 && n < 32)); then
          printf -v c '\\u%04x' "$n"
        fi
        out+="$c"
        ;;
    esac
  done
  printf '"%s"' "$out"
}

WATCHING=""
[ "$SPOT" = 1 ] && WATCHING+="spot, "
[ -n "$AUTOSTOP" ] && WATCHING+="autostop ${AUTOSTOP}s, "
[ -n "$MAX_SECONDS" ] && WATCHING+="max ${MAX_SECONDS}s, "
[ -n "$MAX_COST" ] && WATCHING+="max \$${MAX_COST}, "
WATCHING="${RUNCTL_GUARDIAN_WATCHING:-${WATCHING%, }}"

# the record: every key/value pair set so far, written as guardian.json and guardian.fields
declare -A REC=()
REC_ORDER=()
rec() {
  local k="$1"
  [ -n "${REC[$k]+x}" ] || REC_ORDER+=("$k")
  REC[$k]="$2"
}
write_record() {
  local json="{" fields="@runctl guardian=1" k sep=""
  for k in "${REC_ORDER[@]}"; do
    json+="$sep$(json_str "$k"): $(json_str "${REC[$k]}")"
    sep=", "
    fields+=" $k=$(pct "${REC[$k]}")"
  done
  write_atomic "$STATE" "$json}"$'\n' || true
  write_atomic "$FIELDS" "$fields"$'\n' || true
}
say() {
  # one line in the run's log (and the guardian's own log)
  printf '[runctl guardian] %s\n' "$*" >>"$LOG" 2>/dev/null || true
  printf '%s [runctl guardian] %s\n' "$(date -u +%H:%M:%S)" "$*"
}

rec run_id "$RUN_ID"
rec project "$PROJECT"
rec pid "$$"
rec state watching
rec watching "$WATCHING"
rec started "$(iso "$(now_epoch)")"
write_record
printf '%s guardian of run %s: watching %s (poll %ss)\n' "$(date -u +%H:%M:%S)" "$RUN_ID" "$WATCHING" "$POLL"

# --- the training ------------------------------------------------------------------------------
PID="" ST="" STARTED=""
tries=$(awk -v s="${RUNCTL_GUARDIAN_START_WAIT:-30}" 'BEGIN { printf "%d", s * 10 }')
while [ ! -f "$RUN_DIR/pid" ] && [ ! -f "$RUN_DIR/exit_code" ] && [ "$tries" -gt 0 ]; do
  sleep 0.1
  tries=$((tries - 1))
done
if [ -f "$RUN_DIR/pid" ]; then read -r PID ST _ 2>/dev/null <"$RUN_DIR/pid" || true; fi
STARTED="$(read_first "$RUN_DIR/started_at")"
is_uint "$STARTED" || STARTED="$(now_epoch)"
training_alive() { [ -n "$PID" ] && pid_alive "$PID" "$ST"; }

# --- IMDSv2 ------------------------------------------------------------------------------------
TOKEN=""
IMDS_BODY=""
IMDS_WARNED=0
imds_token() {
  TOKEN="$(curl -sS -f -m 2 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" \
    "$IMDS/latest/api/token" 2>/dev/null)" || TOKEN=""
  [ -n "$TOKEN" ]
}
imds_get() {
  # imds_get PATH: 0 = 200 (IMDS_BODY set), 1 = 404 (nothing there), 2 = unreachable/refused
  local code attempt
  for attempt in 1 2; do
    if [ -z "$TOKEN" ] && ! imds_token; then return 2; fi
    IMDS_BODY="$(curl -sS -m 2 -H "X-aws-ec2-metadata-token: $TOKEN" -w '\n%{http_code}' \
      "$IMDS/latest/meta-data/$1" 2>/dev/null)" || return 2
    code="${IMDS_BODY##*$'\n'}"
    IMDS_BODY="${IMDS_BODY%$'\n'*}"
    case "$code" in
      200) return 0 ;;
      404) return 1 ;;
      401) TOKEN="" ;; # expired token: get a new one once
      *) return 2 ;;
    esac
    : "$attempt"
  done
  return 2
}
spot_notice() {
  local rc=0
  imds_get spot/instance-action || rc=$?
  if [ "$rc" = 2 ] && [ "$IMDS_WARNED" = 0 ]; then
    IMDS_WARNED=1
    printf '%s instance metadata (IMDSv2) not reachable at %s: spot notices cannot be seen\n' \
      "$(date -u +%H:%M:%S)" "$IMDS"
  fi
  [ "$rc" = 0 ] && [[ "$IMDS_BODY" == *action* ]]
}

# --- actions -----------------------------------------------------------------------------------
stop_training() {
  # SIGTERM the training's process group; wait (bounded) for it to checkpoint and exit
  training_alive || return 0
  kill -TERM -- "-$PID" 2>/dev/null || kill -TERM -- "$PID" 2>/dev/null || true
  local t0 deadline
  t0="$(now_f)"
  deadline=$(awk -v a="$t0" -v w="$TERM_WAIT" 'BEGIN { printf "%.3f", a + w }')
  while training_alive && ! fge "$(now_f)" "$deadline"; do sleep 0.1; done
  rec training_waited_s "$(fsub "$(now_f)" "$t0")"
  if training_alive; then rec training "still running after SIGTERM"; else rec training "exited after SIGTERM"; fi
}

UP_NAME=""
upload_newest() {
  # the newest checkpoint → s3 key runctl/PROJECT/checkpoints/RUN_ID/<relpath>
  local rel path key how="" esc
  rel="$(newest_checkpoint "$CK_DIR")"
  UP_NAME="$rel"
  if [ -z "$rel" ]; then
    rec upload none
    rec upload_reason "no checkpoint on the instance"
    return 1
  fi
  path="$CK_DIR/$rel"
  key="$KEY_PREFIX$rel"
  rec checkpoint "$rel"
  if [ "${RUNCTL_GUARDIAN_ROLE:-0}" = 1 ] && [ -n "${RUNCTL_GUARDIAN_BUCKET:-}" ] && command -v aws >/dev/null 2>&1; then
    if aws s3 cp --only-show-errors -- "$path" "s3://$RUNCTL_GUARDIAN_BUCKET/$key" </dev/null >/dev/null; then
      how="instance-role"
    fi
  fi
  if [ -z "$how" ] && [ -f "$SECRETS/s3post.curl" ]; then
    esc="${path//\\/\\\\}"
    esc="${esc//\"/\\\"}"
    if curl -sS -f -m 600 --retry 3 --retry-delay 1 -o /dev/null -K "$SECRETS/s3post.curl" \
      --form-string "key=$key" -F "file=@\"$esc\"" </dev/null 2>/dev/null; then
      how="presigned-post"
    fi
  fi
  if [ -z "$how" ]; then
    rec upload failed
    rec upload_reason "no upload path worked (presigned POST expired or unreachable, no instance role)"
    return 1
  fi
  rec upload ok
  rec uploaded_via "$how"
  rec s3_key "$key"
  rec size "$(stat -c %s -- "$path" 2>/dev/null || printf '?')"
  read -r esc _ < <(md5sum <"$path")
  rec md5 "$esc"
  rec uploaded_at "$(now_f)"
  return 0
}

end_instance() {
  # stop (or terminate) this instance: a presigned EC2 call, else (AWS only) shutdown
  local f="$SECRETS/$END.curl" body
  if [ -f "$f" ]; then
    # recorded first: a stopping instance kills this process as soon as EC2 accepts the call
    rec instance "$END requested (presigned EC2 call)"
    write_record
    if body="$(curl -sS -f -m 30 --retry 2 --retry-delay 1 -K "$f" </dev/null 2>/dev/null)"; then
      : "$body"
      return 0
    fi
  fi
  if [ -n "${RUNCTL_SANDBOX_INSTANCE:-}" ]; then
    rec instance "could not $END it (presigned EC2 call failed; no shutdown in the sandbox)"
    write_record
    return 1
  fi
  if [ "${RUNCTL_GUARDIAN_ALLOW_SHUTDOWN:-0}" = 1 ] || [ -n "${RUNCTL_SHUTDOWN_CMD:-}" ]; then
    local -a sd
    read -r -a sd <<<"${RUNCTL_SHUTDOWN_CMD:-shutdown -h now}"
    if [ -z "${RUNCTL_SHUTDOWN_CMD:-}" ] && [ "$(id -u)" != 0 ]; then sd=(sudo -n "${sd[@]}"); fi
    rec instance "$END requested (${sd[*]})"
    write_record
    "${sd[@]}" </dev/null
    return $?
  fi
  rec instance "could not $END it (no presigned EC2 call and shutdown not allowed)"
  write_record
  return 1
}

finish() {
  # finish STATE ACTION LOGLINE_PREFIX: record, tell the run log
  local what
  rec state "$1"
  rec action "$2"
  rec at "$(iso "$(now_epoch)")"
  if [ "${REC[upload]:-}" = ok ]; then
    what="$UP_NAME uploaded"
  elif [ -n "$UP_NAME" ]; then
    what="$UP_NAME NOT uploaded (${REC[upload_reason]:-})"
  else
    what="no checkpoint to upload"
  fi
  # the log line first: whoever sees the final record can rely on the log already saying it
  say "$3: $what"
  write_record
}

act() {
  # act ACTION: what to do once something happened
  local action="$1"
  rec state acting
  rec action "$action"
  rec detected_at "$(now_f)"
  write_record
  case "$action" in
    spot-notice)
      rec notice "$IMDS_BODY"
      stop_training
      upload_newest || true
      finish acted "$action" "spot interruption notice"
      ;;
    autostop | max-hours | max-cost)
      stop_training
      upload_newest || true
      local why
      case "$action" in
        autostop) why="autostop: idle for ${AUTOSTOP}s" ;;
        max-hours) why="budget cap: run time reached ${MAX_SECONDS}s" ;;
        *) why="budget cap: cost reached \$$(cost_of "$ELAPSED" "$PRICE") of \$${MAX_COST}" ;;
      esac
      if [ "$END" = terminate ]; then
        why+=" (a one-time spot instance cannot be stopped: terminating it)"
      else
        why+=" (stopping the instance)"
      fi
      finish acted "$action" "$why"
      end_instance || say "could not $END the instance: ${REC[instance]:-}"
      ;;
  esac
  exit 0
}

# --- the watch -----------------------------------------------------------------------------------
on_term() {
  # killed (the instance stops, or sandbox stop): keep what was recorded, say it ended
  if [ "${REC[state]}" = watching ]; then
    rec state exited
    rec at "$(iso "$(now_epoch)")"
    write_record
  fi
  exit 0
}
trap on_term TERM INT
IDLE_SINCE=""
ELAPSED=0
while :; do
  lock_inspect
  if { [ "$L_STATE" = running ] || [ "$L_STATE" = starting ]; } && [ -n "$L_RUN" ] && [ "$L_RUN" != "$RUN_ID" ]; then
    rec state superseded
    rec action "run $L_RUN took the instance"
    write_record
    exit 0
  fi
  if [ "$SPOT" = 1 ] && spot_notice; then act spot-notice; fi
  now="$(now_f)"
  if training_alive; then
    IDLE_SINCE=""
  elif [ -z "$IDLE_SINCE" ]; then
    IDLE_SINCE="$(read_first "$RUN_DIR/ended_at")"
    # whole seconds, rounded up: autostop never acts early
    if is_uint "$IDLE_SINCE"; then IDLE_SINCE=$((IDLE_SINCE + 1)); else IDLE_SINCE="$now"; fi
    rec training ended
    write_record
  fi
  ELAPSED="$(fsub "$now" "$STARTED")"
  if [ -n "$MAX_SECONDS" ] && fge "$ELAPSED" "$MAX_SECONDS"; then act max-hours; fi
  if [ -n "$MAX_COST" ] && [ -n "$PRICE" ] && fge "$(cost_of "$ELAPSED" "$PRICE")" "$MAX_COST"; then act max-cost; fi
  if [ -n "$IDLE_SINCE" ]; then
    if [ -n "$AUTOSTOP" ]; then
      if fge "$(fsub "$now" "$IDLE_SINCE")" "$AUTOSTOP"; then act autostop; fi
    elif [ -z "$MAX_SECONDS" ] && [ -z "$MAX_COST" ]; then
      rec state done
      rec action "training ended; nothing left to watch"
      rec at "$(iso "$(now_epoch)")"
      write_record
      exit 0
    fi
  fi
  sleep "$POLL"
done
