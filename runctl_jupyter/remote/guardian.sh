#!/usr/bin/env bash
# guardian.sh PROJECT RUN_ID            watch a run (started detached by launch.sh, beside the training)
# guardian.sh --install PROJECT RUN_ID  (launch.sh, before the training starts) copy this script into
#                                       the run dir and move the secrets from the environment into files
#
# Independent of the notebook: polls IMDSv2 (PUT /latest/api/token, then GET
# /latest/meta-data/spot/instance-action with the token) at ${RUNCTL_IMDS_ENDPOINT:-http://169.254.169.254}
# every RUNCTL_GUARDIAN_POLL seconds (default 5), and watches the training (RUN_DIR/pid) and the clock.
#   spot notice  → SIGTERM the training's main process, wait (bounded) for it to exit, upload the newest
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
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

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
  if ! cp -- "$0" "$(dirname -- "$0")/common.sh" "$RUN_DIR/"; then
    die 4 "cannot copy the guardian into $RUN_DIR"
  fi
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
      \\) out+="\\\\" ;;
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
M_PID="" M_ST=""
training_alive() {
  [ -n "$PID" ] || return 1
  run_main "$RUN_DIR"
  run_alive "$PID" "$ST"
}

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
  # SIGTERM the training's main process (not its group: workers would die first and crash it before
  # it saves); wait (bounded) for it to checkpoint and exit; then end whatever is left of its group
  training_alive || return 0
  signal_stop "$PID" "$ST" "$RUN_DIR"
  local t0 deadline
  t0="$(now_f)"
  deadline=$(awk -v a="$t0" -v w="$TERM_WAIT" 'BEGIN { printf "%.3f", a + w }')
  while training_alive && ! fge "$(now_f)" "$deadline"; do sleep 0.1; done
  rec training_waited_s "$(fsub "$(now_f)" "$t0")"
  if training_alive; then
    rec training "still running after SIGTERM"
  else
    rec training "exited after SIGTERM"
    end_group "$PID" || rec training "exited after SIGTERM; some of its processes survived SIGKILL"
  fi
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
      rec state "done"
      rec action "training ended; nothing left to watch"
      rec at "$(iso "$(now_epoch)")"
      write_record
      exit 0
    fi
  fi
  sleep "$POLL"
done
