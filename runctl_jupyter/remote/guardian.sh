#!/usr/bin/env bash
# guardian.sh PROJECT RUN_ID            watch a run (started detached by launch.sh, beside the training)
# guardian.sh --install PROJECT RUN_ID  (launch.sh, before the training starts) copy this script into
#                                       the run dir and move the secrets from the environment into files
#
# Independent of the notebook: polls IMDSv2 (PUT /latest/api/token, then GET
# /latest/meta-data/spot/instance-action with the token) at ${RUNCTL_IMDS_ENDPOINT:-http://169.254.169.254}
# every RUNCTL_GUARDIAN_POLL seconds (default 5), and watches the training (RUN_DIR/pid) and the clock.
#   spot notice  → SIGTERM the training's main process, wait (bounded) for it to exit, upload EVERY
#                  checkpoint of the project, newest first (the 2 minutes may run out), record what went
#                  up and what did not, exit (AWS takes the instance and its disk).
#   autostop     → the training has ended (or another run's claim is gone) for RUNCTL_GUARDIAN_AUTOSTOP
#                  seconds: upload, then stop (or terminate) the instance, exit.
#   budget cap   → the run's elapsed time ≥ RUNCTL_GUARDIAN_MAX_SECONDS, or elapsed × RUNCTL_PRICE_PER_HOUR
#                  ≥ RUNCTL_GUARDIAN_MAX_COST: SIGTERM, wait, upload, then stop (or terminate) the instance.
#   Uploads: END=stop (the disk survives) → the newest checkpoint only. END=terminate (the disk goes) →
#   every checkpoint file of the project (same rule as checkpoints.sh for .NAME.tmp… files), and the
#   instance is terminated only when every one went up AND no other project's checkpoint folder on the
#   disk holds files (refuse on doubt); otherwise it keeps running and the record (instance=kept running:
#   WHY) and the run log say why.
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
#   RUNCTL_G_FLEETPOST, RUNCTL_G_FLEETLIST  (node RUNCTL_GUARDIAN_FLEET_NODE of a fleet run) curl configs: a
#                     presigned S3 POST for keys under RUNCTL_GUARDIAN_FLEET_PREFIX and a presigned
#                     ListObjectsV2 GET of it. When this node's run ends other than by exit 0 (an error, a
#                     spot notice, a budget cap, lost), the guardian posts node-N-WHY there; every
#                     RUNCTL_GUARDIAN_FLEET_POLL seconds (default 30) it lists the prefix, and when another
#                     node's key is there in two lists in a row (a runctl following the run acts first) it stops this node's training (SIGTERM: it saves a checkpoint),
#                     uploads the newest checkpoint and says which node ended the run, with no notebook
#                     watching (`fleet-peer`; the instance keeps running unless autostop stops it).
#   RUNCTL_G_FLEETPEERS  curl config: a presigned EC2 DescribeInstances of the other nodes' instances
#                     (RUNCTL_GUARDIAN_FLEET_PEERS="NODE:INSTANCE_ID …"), filtered to the states that end a
#                     run (stopping, stopped, shutting-down, terminated): asked with each list, so a node
#                     whose instance went without its guardian saying so ends the run too (the guardian
#                     posts node-N-instance-gone for it).
# Records: RUN_DIR/guardian.json (what it watches, what it did), RUN_DIR/guardian.fields (the same as one
#   "@runctl k=v …" line for guardian_status.sh), a "[runctl guardian] …" line in RUN_DIR/log per action,
#   RUN_DIR/guardian.uploads (when every checkpoint is uploaded: one "@runctl uploaded=… size=… mtime=…
#   via=…" or "@runctl failed=… size=… mtime=… reason=…" line per file; the record has the counts:
#   upload_scope=all uploaded=N upload_total=M upload_failed=F uploaded_bytes= upload_total_bytes=).
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
    for name in s3post stop terminate fleetpost fleetlist fleetpeers; do
      case "$name" in
        s3post) value="${RUNCTL_G_S3POST:-}" ;;
        stop) value="${RUNCTL_G_STOP:-}" ;;
        fleetpost) value="${RUNCTL_G_FLEETPOST:-}" ;;
        fleetlist) value="${RUNCTL_G_FLEETLIST:-}" ;;
        fleetpeers) value="${RUNCTL_G_FLEETPEERS:-}" ;;
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
FLEET_NODE="${RUNCTL_GUARDIAN_FLEET_NODE:-}"
FLEET_PREFIX="${RUNCTL_GUARDIAN_FLEET_PREFIX:-}"
FLEET_POLL="${RUNCTL_GUARDIAN_FLEET_POLL:-30}"
case "$END" in stop | terminate) ;; *) die 2 "RUNCTL_GUARDIAN_END must be stop or terminate" ;; esac
if [ -n "$FLEET_NODE" ]; then
  is_uint "$FLEET_NODE" || die 2 "RUNCTL_GUARDIAN_FLEET_NODE must be a node number"
  [ -n "$FLEET_PREFIX" ] || die 2 "RUNCTL_GUARDIAN_FLEET_PREFIX is needed with RUNCTL_GUARDIAN_FLEET_NODE"
fi
[ -d "$RUN_DIR" ] || die 2 "run directory not found: $RUN_DIR"

now_f() { date +%s.%N; }
# fge A B: A >= B (decimal numbers)
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
cost_of() { awk -v s="$1" -v p="$2" 'BEGIN { printf "%.4f", s * p / 3600 }'; }
is_num() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }
for v in "$POLL" "$TERM_WAIT" "$FLEET_POLL" ${AUTOSTOP:+"$AUTOSTOP"} ${MAX_SECONDS:+"$MAX_SECONDS"} ${MAX_COST:+"$MAX_COST"} ${PRICE:+"$PRICE"}; do
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

# S3's limits a presigned POST meets (the POST policy's content-length-range is the same 5 GiB)
POST_MAX_BYTES=5368709120
KEY_MAX_BYTES=1024
UPLOADS="$RUN_DIR/guardian.uploads"
byte_len() {
  local LC_ALL=C
  printf '%s' "${#1}"
}

post_failure() {
  # post_failure CURL_RC HTTP_CODE: why a presigned POST did not store its object (one phrase)
  case "$1" in
    0) printf 'S3 refused the presigned POST (HTTP %s; expired?)' "$2" ;;
    26) printf 'cannot read the file' ;;
    *) printf 'S3 unreachable (curl error %s)' "$1" ;;
  esac
}

UP_HOW="" UP_WHY=""
upload_file() {
  # upload_file RELPATH SIZE: CK_DIR/RELPATH → s3 key runctl/PROJECT/checkpoints/RUN_ID/RELPATH, with the
  # instance role (AWS CLI) or the presigned POST (its policy: any key starting with that prefix);
  # 0 = uploaded (UP_HOW says how), else UP_WHY says why not
  local rel="$1" size="$2" path="$CK_DIR/$1" key="$KEY_PREFIX$1" esc code rc
  UP_HOW="" UP_WHY=""
  if [ "$(byte_len "$key")" -gt "$KEY_MAX_BYTES" ]; then
    UP_WHY="its S3 key would be over S3's $KEY_MAX_BYTES bytes"
    return 1
  fi
  if [ "${RUNCTL_GUARDIAN_ROLE:-0}" = 1 ] && [ -n "${RUNCTL_GUARDIAN_BUCKET:-}" ] && command -v aws >/dev/null 2>&1; then
    if aws s3 cp --only-show-errors -- "$path" "s3://$RUNCTL_GUARDIAN_BUCKET/$key" </dev/null >/dev/null; then
      UP_HOW="instance-role"
      return 0
    fi
    UP_WHY="the instance role's upload failed (aws s3 cp)"
  fi
  if [ -f "$SECRETS/s3post.curl" ]; then
    if [ "$size" -gt "$POST_MAX_BYTES" ]; then
      UP_WHY="${UP_WHY:+$UP_WHY; }over 5 GiB, more than one presigned POST holds (an instance role can: guardian_upload instance-role)"
      return 1
    fi
    esc="${path//\\/\\\\}"
    esc="${esc//\"/\\\"}"
    rc=0
    # the URL and signature stay in the curl config file: never in argv, never in a message
    code="$(curl -sS -m 600 --retry 3 --retry-delay 1 -o /dev/null -w '%{http_code}' -K "$SECRETS/s3post.curl" \
      --form-string "key=$key" -F "file=@\"$esc\"" </dev/null 2>/dev/null)" || rc=$?
    if [ "$rc" = 0 ] && [[ "$code" == 2?? ]]; then
      UP_HOW="presigned-post"
      return 0
    fi
    UP_WHY="${UP_WHY:+$UP_WHY; }$(post_failure "$rc" "$code")"
    return 1
  fi
  UP_WHY="${UP_WHY:-no upload path (no presigned POST, no instance role with the AWS CLI)}"
  return 1
}

UP_NAME=""
upload_newest() {
  # the newest checkpoint only (the instance stops: its disk, with every other checkpoint, stays)
  local rel path sum
  rec upload_scope newest
  rel="$(newest_checkpoint "$CK_DIR")"
  UP_NAME="$rel"
  if [ -z "$rel" ]; then
    rec upload none
    rec upload_reason "no checkpoint on the instance"
    return 1
  fi
  path="$CK_DIR/$rel"
  rec checkpoint "$rel"
  if ! upload_file "$rel" "$(stat -L -c %s -- "$path" 2>/dev/null || printf 0)"; then
    rec upload failed
    rec upload_reason "$UP_WHY"
    return 1
  fi
  rec upload ok
  rec uploaded_via "$UP_HOW"
  rec s3_key "$KEY_PREFIX$rel"
  rec size "$(stat -L -c %s -- "$path" 2>/dev/null || printf '?')"
  read -r sum _ < <(md5sum <"$path")
  rec md5 "$sum"
  rec uploaded_at "$(now_f)"
  return 0
}

# list_files DIR: every checkpoint file under DIR, newest first, following symlinks, without the recent
# temporary files of atomic writes in progress (common.sh is_partial, the rule checkpoints.sh follows):
# LF_PATHS, LF_SIZES, LF_MTIMES (parallel arrays). Fails (LIST_WHY says why) when find could not read
# everything: a listing that may miss a file is no evidence.
LF_PATHS=() LF_SIZES=() LF_MTIMES=()
LIST_WHY=""
list_files() {
  local dir="$1" tmp="$RUN_DIR/.guardian-list.$$" line t s p rc=0
  LF_PATHS=() LF_SIZES=() LF_MTIMES=()
  LIST_WHY=""
  [ -d "$dir" ] || return 0
  find -L "$dir" -type f -printf '%T@ %s %P\0' >"$tmp" 2>"$tmp.err" || rc=1
  if [ "$rc" != 0 ]; then
    LIST_WHY="cannot list every file of $dir ($(head -c 300 -- "$tmp.err" 2>/dev/null | head -n 1))"
  fi
  while IFS= read -r -d '' line; do
    t="${line%% *}"
    line="${line#* }"
    s="${line%% *}"
    p="${line#* }"
    is_partial "$dir" "$p" && continue
    LF_PATHS+=("$p")
    LF_SIZES+=("$s")
    LF_MTIMES+=("$t")
  done < <(LC_ALL=C sort -z -r -n -- "$tmp" 2>/dev/null)
  rm -f -- "$tmp" "$tmp.err"
  return "$rc"
}

brief() {
  # brief NAME: a file name short enough for a one-line record
  if [ "${#1}" -gt 80 ]; then printf '%s…%s' "${1:0:40}" "${1: -30}"; else printf '%s' "$1"; fi
}

UP_DONE=0 UP_TOTAL=0 UP_SUMMARY="" UP_FAILED_TEXT=""
upload_all() {
  # every checkpoint file of the project (the instance is terminated, or AWS takes it: its disk goes),
  # newest first (a spot notice's 2 minutes may run out before the last). Then the folder is listed
  # again, and what is new or changed since goes up too (3 passes at most): the last listing is the
  # evidence. Each file is a line in RUN_DIR/guardian.uploads; the record counts them.
  local pass i rel size mtime reason ok_bytes total_bytes hows="" shown=0 written=-1
  local -a todo=()
  local -A done_=() failed_=() why_=()
  rec upload_scope all
  : >"$UPLOADS" 2>/dev/null || true
  UP_DONE=0 UP_TOTAL=0 UP_SUMMARY="" UP_FAILED_TEXT=""
  for pass in 1 2 3 4; do
    if ! list_files "$CK_DIR"; then
      rec upload_listing "$LIST_WHY"
    fi
    todo=()
    for i in "${!LF_PATHS[@]}"; do
      rel="${LF_PATHS[i]}"
      [ "${done_[$rel]:-}" = "${LF_SIZES[i]} ${LF_MTIMES[i]}" ] && continue
      [ "${failed_[$rel]:-}" = "${LF_SIZES[i]} ${LF_MTIMES[i]}" ] && continue # failed as it is: not again
      todo+=("$i")
    done
    [ "${#todo[@]}" -gt 0 ] && [ "$pass" -lt 4 ] || break
    [ "$pass" = 1 ] || say "checkpoints changed while uploading: uploading ${#todo[@]} more (pass $pass)"
    for i in "${todo[@]}"; do
      rel="${LF_PATHS[i]}"
      size="${LF_SIZES[i]}"
      mtime="${LF_MTIMES[i]}"
      if upload_file "$rel" "$size"; then
        # a file that changed while it went up has no faithful copy: the next pass takes it again
        if [ "$(find -L "$CK_DIR/$rel" -maxdepth 0 -printf '%s %T@' 2>/dev/null)" = "$size $mtime" ]; then
          done_[$rel]="$size $mtime"
          unset 'failed_[$rel]'
          case ", $hows, " in *", $UP_HOW, "*) ;; *) hows+="${hows:+, }$UP_HOW" ;; esac
          printf '@runctl uploaded=%s size=%s mtime=%s via=%s\n' "$(pct "$rel")" "$size" "$mtime" "$UP_HOW" >>"$UPLOADS"
        else
          why_[$rel]="it changed while it was being uploaded"
        fi
      else
        failed_[$rel]="$size $mtime"
        why_[$rel]="$UP_WHY"
        printf '@runctl failed=%s size=%s mtime=%s reason=%s\n' "$(pct "$rel")" "$size" "$mtime" "$(pct "$UP_WHY")" >>"$UPLOADS"
      fi
      rec uploaded "${#done_[@]}"
      rec upload_total "${#LF_PATHS[@]}"
      # the progress on the disk, at most once a second (writing the record is not free)
      if [ "$SECONDS" != "$written" ]; then
        write_record
        written="$SECONDS"
      fi
    done
  done
  # the verdict, on the last listing
  UP_DONE=0 UP_TOTAL="${#LF_PATHS[@]}" ok_bytes=0 total_bytes=0
  for i in "${!LF_PATHS[@]}"; do
    rel="${LF_PATHS[i]}"
    total_bytes=$((total_bytes + LF_SIZES[i]))
    if [ "${done_[$rel]:-}" = "${LF_SIZES[i]} ${LF_MTIMES[i]}" ]; then
      UP_DONE=$((UP_DONE + 1))
      ok_bytes=$((ok_bytes + LF_SIZES[i]))
      continue
    fi
    if [ "${failed_[$rel]:-}" = "${LF_SIZES[i]} ${LF_MTIMES[i]}" ]; then
      reason="${why_[$rel]}"
    else
      reason="it kept changing while the guardian uploaded"
    fi
    if [ "$shown" -lt 3 ]; then
      UP_FAILED_TEXT+="${UP_FAILED_TEXT:+, }$(brief "$rel"): $reason"
    fi
    shown=$((shown + 1))
  done
  if [ "$shown" -gt 3 ]; then UP_FAILED_TEXT+=", and $((shown - 3)) more (guardian.uploads)"; fi
  UP_NAME="${LF_PATHS[0]:-}"
  rec checkpoint "$UP_NAME"
  rec uploaded "$UP_DONE"
  rec upload_total "$UP_TOTAL"
  rec upload_failed "$((UP_TOTAL - UP_DONE))"
  rec uploaded_bytes "$ok_bytes"
  rec upload_total_bytes "$total_bytes"
  [ -z "$hows" ] || rec uploaded_via "$hows"
  if [ "$UP_TOTAL" = 0 ]; then
    rec upload none
    rec upload_reason "no checkpoint on the instance"
    UP_SUMMARY="no checkpoint to upload"
  elif [ "$UP_DONE" = "$UP_TOTAL" ]; then
    rec upload ok
    UP_SUMMARY="all $UP_TOTAL checkpoints uploaded ($ok_bytes bytes; newest $(brief "$UP_NAME"))"
  else
    if [ "$UP_DONE" = 0 ]; then rec upload failed; else rec upload partial; fi
    rec upload_reason "$UP_FAILED_TEXT"
    UP_SUMMARY="$UP_DONE of $UP_TOTAL checkpoints uploaded; NOT uploaded: $UP_FAILED_TEXT"
  fi
  rec uploaded_at "$(now_f)"
  [ -z "${REC[upload_listing]:-}" ] && [ "$UP_DONE" = "$UP_TOTAL" ]
}

OTHER=""
other_projects() {
  # OTHER: every other project whose checkpoint folder on this disk holds files ("name (N files), …"):
  # this guardian's presigned POST covers only runctl/PROJECT/checkpoints/RUN_ID/, so it cannot copy
  # them; fails (LIST_WHY) when a folder could not be listed
  local dir name rc=0 why=""
  OTHER=""
  for dir in "$RUNCTL_DIR"/*/checkpoints "$RUNCTL_DIR"/.[!.]*/checkpoints; do
    [ -d "$dir" ] || continue
    name="${dir%/checkpoints}"
    name="${name##*/}"
    [ "$name" = "$PROJECT" ] && continue
    if ! list_files "$dir"; then
      rc=1
      why="$LIST_WHY"
    fi
    case "${#LF_PATHS[@]}" in
      0) ;;
      1) OTHER+="${OTHER:+, }$(brief "$name") (1 file)" ;;
      *) OTHER+="${OTHER:+, }$(brief "$name") (${#LF_PATHS[@]} files)" ;;
    esac
  done
  LIST_WHY="$why"
  return "$rc"
}

KEEP_WHY=""
may_terminate() {
  # may_terminate: every checkpoint of every project on this disk has a copy in S3 (refuse on doubt);
  # otherwise KEEP_WHY says why the instance must keep running
  KEEP_WHY=""
  if [ -n "${REC[upload_listing]:-}" ]; then
    KEEP_WHY="${REC[upload_listing]}"
  elif [ "$UP_DONE" != "$UP_TOTAL" ]; then
    KEEP_WHY="$((UP_TOTAL - UP_DONE)) of $UP_TOTAL checkpoints not uploaded ($UP_FAILED_TEXT)"
  elif ! other_projects; then
    KEEP_WHY="$LIST_WHY"
  elif [ -n "$OTHER" ]; then
    rec other_projects "$OTHER"
    KEEP_WHY="other projects' checkpoints on this disk, which this guardian cannot copy: $OTHER"
  elif training_alive; then
    KEEP_WHY="the training still runs after SIGTERM and SIGKILL: its checkpoints may still change"
  fi
  [ -z "$KEEP_WHY" ]
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
  # finish STATE ACTION LOGLINE_PREFIX [MORE_LOGLINE]: record, tell the run log
  local what
  rec state "$1"
  rec action "$2"
  rec at "$(iso "$(now_epoch)")"
  if [ "${REC[upload_scope]:-}" = all ]; then
    what="$UP_SUMMARY"
  elif [ "${REC[upload]:-}" = ok ]; then
    what="$UP_NAME uploaded"
  elif [ -n "$UP_NAME" ]; then
    what="$UP_NAME NOT uploaded (${REC[upload_reason]:-})"
  else
    what="no checkpoint to upload"
  fi
  # the log lines first: whoever sees the final record can rely on the log already saying it
  say "$3: $what"
  if [ -n "${4:-}" ]; then say "$4"; fi
  write_record
}

quiesce_training() {
  # the instance goes (terminate, a spot reclaim), so a training still running after SIGTERM dies with it
  # anyway: end it now, so that the checkpoint folder holds still while it is copied
  training_alive || return 0
  if end_group "$PID"; then
    rec training "still running after SIGTERM; ended (the instance is going away)"
  else
    rec training "still running after SIGTERM; some of its processes survived SIGKILL"
  fi
}

# --- a fleet run: one node's end ends the run on every node ---------------------------------------
FLEET_POSTED=0 PEER_SEEN="" PEER_ENDED="" FLEET_NEXT=0 FLEET_LIST_WARNED=0 DONE_NODES=" "
post_end() {
  # post_end NODE WHY: the object node-NODE-WHY under the run's fleet-ends prefix; POSTED says how it went
  local code rc=0
  POSTED=""
  if [ ! -f "$SECRETS/fleetpost.curl" ]; then
    POSTED="no presigned POST"
    return 1
  fi
  # the URL and signature stay in the curl config file: never in argv, never in a message
  code="$(curl -sS -m 30 --retry 3 --retry-delay 1 -o /dev/null -w '%{http_code}' -K "$SECRETS/fleetpost.curl" \
    --form-string "key=${FLEET_PREFIX}node-$1-$2" --form-string "file=node $1: $2" </dev/null 2>/dev/null)" || rc=$?
  if [ "$rc" = 0 ] && [[ "$code" == 2?? ]]; then POSTED="node-$1-$2"; else POSTED="$(post_failure "$rc" "$code")"; fi
}
fleet_post() {
  # fleet_post WHY: tell the other nodes that this node's run ended (WHY: exit-N | spot-notice | lost | …),
  # once; never when it ended because another node's did (that node already said so)
  [ -n "$FLEET_NODE" ] && [ "$FLEET_POSTED" = 0 ] && [ -z "$PEER_ENDED" ] || return 0
  FLEET_POSTED=1
  post_end "$FLEET_NODE" "$1" || true
  rec fleet_post "$POSTED"
  say "fleet: told the other nodes that this node's run ended ($1): $POSTED"
}
peer_instance_gone() {
  # the first other node whose instance is stopping, stopped, shutting down or terminated (EC2, through
  # the presigned DescribeInstances filtered to those states): "NODE" on stdout; nothing when none is
  local body id entry
  [ -f "$SECRETS/fleetpeers.curl" ] || return 1
  body="$(curl -sS -m 10 -w '\n%{http_code}' -K "$SECRETS/fleetpeers.curl" </dev/null 2>/dev/null)" || return 1
  [ "${body##*$'\n'}" = 200 ] || return 1
  id="$(grep -o '<instanceId>i-[0-9a-f]*</instanceId>' <<<"${body%$'\n'*}" | head -n 1 | sed -e 's/<[^>]*>//g')"
  [ -n "$id" ] || return 1
  for entry in ${RUNCTL_GUARDIAN_FLEET_PEERS:-}; do
    # a node whose run succeeded may stop its instance (autostop): that ends nothing
    if [ "${entry#*:}" = "$id" ] && [[ "$DONE_NODES" != *" ${entry%%:*} "* ]]; then
      printf '%s' "${entry%%:*}"
      return 0
    fi
  done
  return 1
}
fleet_peer_ended() {
  # 0 when another node said its run ended (PEER_ENDED: which and why) in two lists in a row: one S3 LIST
  # every FLEET_POLL s, and one poll of grace, so that a runctl following the run (it polls every few
  # seconds) ends it first and tells the story; the guardian is for when nobody follows
  [ -n "$FLEET_NODE" ] && [ -z "$PEER_ENDED" ] && [ -f "$SECRETS/fleetlist.curl" ] || return 1
  local t body code key node
  t="$(now_f)"
  fge "$t" "$FLEET_NEXT" || return 1
  FLEET_NEXT="$(awk -v a="$t" -v p="$FLEET_POLL" 'BEGIN { printf "%.3f", a + p }')"
  body="$(curl -sS -m 10 -w '\n%{http_code}' -K "$SECRETS/fleetlist.curl" </dev/null 2>/dev/null)" || return 1
  code="${body##*$'\n'}"
  if [ "$code" != 200 ]; then
    if [ "$FLEET_LIST_WARNED" = 0 ]; then
      FLEET_LIST_WARNED=1
      rec fleet_watch "S3 refused the presigned list (HTTP $code; expired?): other nodes' ends cannot be seen"
      write_record
    fi
    return 1
  fi
  while IFS= read -r key; do
    key="${key//%2F//}"
    key="${key##*/}"
    [[ "$key" =~ ^node-([0-9]+)-([a-z0-9-]+)$ ]] || continue
    [ "${BASH_REMATCH[1]}" = "$FLEET_NODE" ] && continue
    if [ "${BASH_REMATCH[2]}" = succeeded ]; then
      DONE_NODES+="${BASH_REMATCH[1]} "
      continue
    fi
    if [ "$PEER_SEEN" = "$key" ]; then
      PEER_ENDED="node ${BASH_REMATCH[1]} (${BASH_REMATCH[2]})"
      return 0
    fi
    [ -n "$PEER_SEEN" ] || PEER_SEEN="$key"
  done < <(grep -o '<Key>[^<]*</Key>' <<<"${body%$'\n'*}" | sed -e 's/^<Key>//' -e 's/<\/Key>$//')
  # a node whose instance went without its guardian saying so: say it for it, act on the next poll
  if [ -z "$PEER_SEEN" ] && node="$(peer_instance_gone)"; then
    post_end "$node" instance-gone || true
    say "fleet: node $node's instance is going or gone (EC2); said so for it: $POSTED"
  fi
  return 1
}
fleet_end() {
  # another node's run ended: stop this node's training as `stop` would (it saves a checkpoint), copy
  # the newest checkpoint to S3; the instance is left to autostop (or the user)
  rec state acting
  rec action fleet-peer
  rec peer "$PEER_ENDED"
  rec detected_at "$(now_f)"
  write_record
  stop_training
  upload_newest || true
  finish acted fleet-peer "fleet: $PEER_ENDED ended the run, so this node's training was stopped"
  if [ -z "$AUTOSTOP" ]; then exit 0; fi
  rec state watching
  write_record
}
ended_why() {
  # why this node's training ended, for the other nodes: succeeded | exit-N | lost; "" when a stop ended it
  local code
  code="$(read_first "$RUN_DIR/exit_code")"
  if [ -f "$RUN_DIR/stop_signal" ]; then return 0; fi
  if [ -z "$code" ]; then printf 'lost'; elif [ "$code" = 0 ]; then printf 'succeeded'; else printf 'exit-%s' "${code#-}"; fi
}

this_instance() {
  # the instance's id (IMDS), for the steps a message gives; "INSTANCE_ID" when IMDS does not say
  if imds_get instance-id && [[ "$IMDS_BODY" =~ ^i-[0-9a-f]{8,17}$ ]]; then
    printf '%s' "$IMDS_BODY"
  else
    printf 'INSTANCE_ID'
  fi
}

act() {
  # act ACTION: what to do once something happened
  local action="$1" why iid
  rec state acting
  rec action "$action"
  rec detected_at "$(now_f)"
  write_record
  case "$action" in
    spot-notice)
      rec notice "$IMDS_BODY"
      fleet_post spot-notice # first: the other nodes get going while this one saves
      stop_training
      # AWS takes the instance and its disk whatever happens: copy everything possible, newest first
      quiesce_training
      upload_all || true
      finish acted "$action" "spot interruption notice"
      ;;
    autostop | max-hours | max-cost)
      [ "$action" = autostop ] || fleet_post "$action"
      stop_training
      case "$action" in
        autostop) why="autostop: idle for ${AUTOSTOP}s" ;;
        max-hours) why="budget cap: run time reached ${MAX_SECONDS}s" ;;
        *) why="budget cap: cost reached \$$(cost_of "$ELAPSED" "$PRICE") of \$${MAX_COST}" ;;
      esac
      if [ "$END" != terminate ]; then
        # the instance stops: its disk, with every checkpoint, stays; the newest goes to S3
        upload_newest || true
        finish acted "$action" "$why (stopping the instance)"
        end_instance || say "could not $END the instance: ${REC[instance]:-}"
        exit 0
      fi
      # terminate destroys the disk: only once every checkpoint of every project on it is in S3
      quiesce_training
      upload_all || true
      if may_terminate; then
        finish acted "$action" "$why (a one-time spot instance cannot be stopped: terminating it)"
        end_instance || say "could not $END the instance: ${REC[instance]:-}"
      else
        iid="$(this_instance)"
        rec instance "kept running: $KEEP_WHY"
        finish acted "$action" "$why (a one-time spot instance cannot be stopped, and terminating it would lose checkpoints: NOT terminating it)" \
          "instance kept running, and billed, until you act: $KEEP_WHY. To resolve: 1. \`runctl aws checkpoints $iid\` shows which checkpoints have S3 copies  2. \`runctl aws stop $iid\` uploads what has none, then terminates it (it refuses on doubt)  3. or \`runctl aws terminate $iid --snapshot\` saves its disk first"
      fi
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
    if fleet_peer_ended; then fleet_end; fi
  elif [ -z "$IDLE_SINCE" ]; then
    why="$(ended_why)"
    if [ "$why" = succeeded ] && [ -n "$FLEET_NODE" ]; then
      # not an end of the run: it lets the others tell this instance's autostop from a failure
      post_end "$FLEET_NODE" succeeded || true
      rec fleet_post "$POSTED"
    elif [ -n "$why" ]; then
      fleet_post "$why"
    fi
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
