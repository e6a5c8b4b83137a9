#!/usr/bin/env bash
# common.sh: the helpers every runctl on-instance script shares (sourced, never run on its own).
#
# Scripts source it from their own folder: command_for ships it beside the script it runs, the
# guardian copies it into the run folder, and tests run the packaged copies side by side.
# It sets ROOT, RUNCTL_DIR, LOCK and GUARD from RUNCTL_ROOT (default $HOME; with neither, as SSM runs
# commands on AWS — root, no HOME — the home of the image's login user: see login_home).
# shellcheck disable=SC2329,SC2034 # helpers and results for the scripts that source this file
# (the helpers are shared: not every script calls every one of them)

login_home() {
  # the home of the image's login user: ec2-user (Amazon Linux), ubuntu (Ubuntu, the Deep Learning
  # AMIs), admin (Debian)…, else the first regular user (uid 1000); prints nothing when there is none
  local u entry
  for u in ${RUNCTL_LOGIN_USERS:-ec2-user ubuntu admin debian rocky centos fedora}; do
    if entry="$(getent passwd "$u" 2>/dev/null)" && [ -n "$entry" ]; then
      printf '%s' "$(cut -d: -f6 <<<"$entry")"
      return 0
    fi
  done
  entry="$(getent passwd 1000 2>/dev/null)" || return 1
  printf '%s' "$(cut -d: -f6 <<<"$entry")"
}

ROOT="${RUNCTL_ROOT:-${HOME:-}}"
if [ -z "$ROOT" ]; then ROOT="$(login_home)" || ROOT=""; fi
RUNCTL_DIR="$ROOT/runctl"
LOCK="$RUNCTL_DIR/lock"
GUARD="$RUNCTL_DIR/.lock.guard"
if [ -z "$ROOT" ]; then
  printf 'runctl: neither RUNCTL_ROOT nor HOME is set, and the instance has no login user\n' >&2
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

# --- a run's processes ---------------------------------------------------------------------------
# The wrapper (RUN_DIR/pid) leads the run's process group (setsid); the training's own process is its
# child (RUN_DIR/main_pid); DataLoader workers or torchrun's children are the training's children.

# shellcheck disable=SC2034 # M_* are results for the caller
run_as_setup() {
  # run_as_setup: who the training runs as, in RUN_AS (argv prefix: empty = this process's user),
  # RUN_HOME and RUN_PATH. Running as root (SSM on AWS) with ROOT owned by another user, the training
  # runs as that user (setpriv: no fork, so the PID runctl records is the training's), with its HOME,
  # USER and a login PATH, and runctl's folder under ROOT is handed to it (code, venv, checkpoints,
  # runs). Otherwise the training runs as we do, with HOME defaulting to ROOT.
  local owner entry uid gid
  RUN_AS=() RUN_HOME="${HOME:-$ROOT}" RUN_USER="$(id -un 2>/dev/null || printf '?')"
  RUN_PATH="/usr/local/bin:/usr/bin:/bin"
  if [ "$(id -u)" = 0 ]; then
    owner="${RUNCTL_RUN_AS:-$(stat -c %U -- "$ROOT" 2>/dev/null)}"
    if [ -n "$owner" ] && [ "$owner" != root ] && entry="$(getent passwd "$owner" 2>/dev/null)" && [ -n "$entry" ]; then
      IFS=: read -r _ _ uid gid _ RUN_HOME _ <<<"$entry"
      RUN_USER="$owner"
      # all but the guardian's secrets (root's, mode 600); symlinks themselves, never their targets
      find "$RUNCTL_DIR" -xdev -name .guardian -prune -o ! -user "$uid" -exec chown -h -- "$uid:$gid" {} + ||
        return 1
      if command -v setpriv >/dev/null 2>&1; then
        RUN_AS=(setpriv "--reuid=$uid" "--regid=$gid" --init-groups --)
      else # runuser forks: stop's SIGTERM reaches the training through it
        RUN_AS=(runuser -u "$owner" --)
      fi
    else
      RUN_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    fi
  fi
  RUN_PATH="$RUN_HOME/.local/bin:$RUN_PATH"
}

run_main() {
  # run_main RUN_DIR: sets M_PID, M_ST (the training's own process; empty for a run started by an
  # older runctl, whose wrapper ran the training in the foreground)
  M_PID="" M_ST=""
  if [ -f "$1/main_pid" ]; then read -r M_PID M_ST _ 2>/dev/null <"$1/main_pid" || true; fi
}

run_alive() {
  # run_alive WRAPPER_PID WRAPPER_ST (after run_main): the wrapper or the training itself still runs
  # (a wrapper killed with -9 leaves the training running: the run is not over)
  pid_alive "$1" "$2" || { [ -n "$M_PID" ] && pid_alive "$M_PID" "$M_ST"; }
}

group_alive() {
  # group_alive PGID: a process (not a zombie) of process group PGID still exists
  local pgid="$1" stat line
  local -a f
  is_uint "$pgid" && [ "$pgid" -gt 1 ] || return 1
  for stat in /proc/[0-9]*/stat; do
    IFS= read -r line 2>/dev/null <"$stat" || continue
    read -r -a f <<<"${line##*) }"
    # f[0] is field 3 (state), f[2] is field 5 (the process group)
    if [ "${f[2]:-}" = "$pgid" ] && [ "${f[0]:-}" != Z ]; then return 0; fi
  done
  return 1
}

end_group() {
  # end_group PGID: whatever is left of a run's process group (orphaned workers that would keep GPU
  # memory) gets SIGTERM, then SIGKILL after RUNCTL_GROUP_GRACE seconds (default 2); fails if a
  # process survived both
  local pgid="$1" tries
  group_alive "$pgid" || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  tries=$((${RUNCTL_GROUP_GRACE:-2} * 10))
  while group_alive "$pgid" && [ "$tries" -gt 0 ]; do
    sleep 0.1
    tries=$((tries - 1))
  done
  group_alive "$pgid" || return 0
  kill -KILL -- "-$pgid" 2>/dev/null || true
  tries=50
  while group_alive "$pgid" && [ "$tries" -gt 0 ]; do
    sleep 0.1
    tries=$((tries - 1))
  done
  ! group_alive "$pgid"
}

signal_stop() {
  # signal_stop WRAPPER_PID WRAPPER_ST RUN_DIR: SIGTERM to the wrapper (it records the stop) and to
  # the training's main process (it saves and shuts its workers down) — never first to the whole
  # group: PyTorch's DataLoader workers and torchrun's children would die first and crash the run
  # before it saves. Sets M_PID/M_ST.
  local tries=40
  run_main "$3"
  while [ -z "$M_PID" ] && pid_alive "$1" "$2" && [ "$tries" -gt 0 ]; do
    sleep 0.05 # the wrapper writes main_pid right after starting the training
    tries=$((tries - 1))
    run_main "$3"
  done
  if pid_alive "$1" "$2"; then kill -TERM -- "$1" 2>/dev/null || true; fi
  if [ -n "$M_PID" ]; then
    if pid_alive "$M_PID" "$M_ST"; then kill -TERM -- "$M_PID" 2>/dev/null || true; fi
  else
    kill -TERM -- "-$1" 2>/dev/null || true # an older runctl's run: the training is the wrapper's foreground
  fi
}

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
    M_PID="" M_ST=""
    if valid_name "$L_PROJECT" && valid_name "$L_RUN"; then run_main "$RUNCTL_DIR/$L_PROJECT/runs/$L_RUN"; fi
    # stale only when no process of the run lives (kill -9 of the wrapper leaves the training running)
    if run_alive "$L_PID" "$L_ST"; then L_STATE=running; else L_STATE=stale; fi
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
  # is_partial DIR RELPATH: a temporary file of an atomic write in progress (.NAME.tmp…) written in
  # the last RUNCTL_PARTIAL_AGE seconds (default 600); an older one is left behind by a crash and
  # may be all that is left of a checkpoint: it is listed
  local mtime
  case "${2##*/}" in .*.tmp*) ;; *) return 1 ;; esac
  mtime="$(stat -L -c %Y -- "$1/$2" 2>/dev/null)" || return 0
  [ $(($(now_epoch) - mtime)) -lt "${RUNCTL_PARTIAL_AGE:-600}" ]
}

newest_checkpoint() {
  # newest_checkpoint DIR [FROM_EPOCH [TO_EPOCH]]: relpath of the newest checkpoint file whose
  # mtime lies in [FROM, TO] (empty if none)
  local dir="$1" from="${2:-0}" to="${3:-}" best="" best_t=-1 rec t p s frac
  [ -d "$dir" ] || return 0
  while IFS= read -r -d '' rec; do
    t="${rec%% *}"
    p="${rec#* }"
    is_partial "$dir" "$p" && continue
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
  done < <(find -L "$dir" -type f -printf '%T@ %P\0' 2>/dev/null)
  printf '%s' "$best"
}

checkpoint_files() {
  # checkpoint_files PROJECT…: CK_PROJECTS/CK_PATHS (parallel arrays, sorted by project, then path):
  # every checkpoint file of each project, following symlinks (a checkpoints/ folder linked to a
  # bigger disk), leaving out only the temporary files of atomic writes in progress
  local project dir p
  CK_PROJECTS=() CK_PATHS=()
  for project in "$@"; do
    dir="$(checkpoint_dir "$project")"
    [ -d "$dir" ] || continue
    while IFS= read -r -d '' p; do
      is_partial "$dir" "$p" && continue
      CK_PROJECTS+=("$project")
      CK_PATHS+=("$p")
    done < <(find -L "$dir" -type f -printf '%P\0' 2>/dev/null | LC_ALL=C sort -z)
  done
}

list_checkpoints() {
  # list_checkpoints FROM BUDGET PROJECT…: from entry FROM (0-based) of checkpoint_files, one line
  #   @runctl project=… checkpoint=… size=… md5=… mtime=…
  # per file until BUDGET characters of output (SSM returns at most 24,000), then
  #   @runctl count=<lines printed> total=<files in all> hashed=<bytes read> [next=<FROM of the next page>]
  # so that the caller can tell a complete listing from a cut one. MD5s are cached in
  # ROOT/runctl/.checksums by (path, size, mtime, ctime, inode): a file is hashed again only once it
  # changed, so listing a large checkpoint folder again reads nothing.
  local from="$1" budget="$2" i j f key line size mtime ctime inode sum count=0 used=0 hashed=0
  local cache="$RUNCTL_DIR/.checksums" ck_path ck_stat cached=""
  local -A sums=()
  shift 2
  checkpoint_files "$@"
  if [ -f "$cache" ]; then
    while read -r ck_path ck_stat; do sums["$ck_path"]="$ck_stat"; done <"$cache"
  fi
  for ((i = from; i < ${#CK_PATHS[@]}; i++)); do
    f="$(checkpoint_dir "${CK_PROJECTS[i]}")/${CK_PATHS[i]}"
    read -r size mtime ctime inode < <(stat -L -c '%s %.9Y %.9Z %i' -- "$f") || continue
    key="$(pct "${CK_PROJECTS[i]}/${CK_PATHS[i]}")"
    cached="${sums[$key]:-}"
    if [ "${cached% *}" = "$size $mtime $ctime $inode" ]; then
      sum="${cached##* }"
    else
      read -r sum _ < <(md5sum <"$f") || continue
      hashed=$((hashed + size))
      sums["$key"]="$size $mtime $ctime $inode $sum"
    fi
    line="@runctl project=${CK_PROJECTS[i]} checkpoint=$(pct "${CK_PATHS[i]}") size=$size md5=$sum mtime=${mtime%%.*}"
    if [ "$count" -gt 0 ] && [ $((used + ${#line} + 1)) -gt "$budget" ]; then break; fi
    printf '%s\n' "$line"
    used=$((used + ${#line} + 1))
    count=$((count + 1))
  done
  if [ "$hashed" -gt 0 ] && [ -d "$RUNCTL_DIR" ]; then
    # keep only the files that still exist (a cache, never evidence: a failed write costs a re-hash)
    {
      for ((j = 0; j < ${#CK_PATHS[@]}; j++)); do
        key="$(pct "${CK_PROJECTS[j]}/${CK_PATHS[j]}")"
        if [ -n "${sums[$key]:-}" ]; then printf '%s %s\n' "$key" "${sums[$key]}"; fi
      done
    } >"$cache.tmp.$$"
    if ! mv -f -- "$cache.tmp.$$" "$cache" 2>/dev/null; then rm -f -- "$cache.tmp.$$"; fi
  fi
  if [ "$i" -lt "${#CK_PATHS[@]}" ]; then
    printf '@runctl count=%s total=%s hashed=%s next=%s\n' "$count" "${#CK_PATHS[@]}" "$hashed" "$i"
  else
    printf '@runctl count=%s total=%s hashed=%s\n' "$count" "${#CK_PATHS[@]}" "$hashed"
  fi
}

# shellcheck disable=SC2034 # CODE_STATS / CODE_HASHES are results for the caller
code_stats_and_hashes() {
  # code_stats_and_hashes CODE_DIR CACHE_FILE: CODE_STATS[relpath]="size mtime ctime inode" for every
  # file in one find pass (no process per file), and CODE_HASHES[json-escaped relpath]="size mtime ctime
  # inode sha256" from the drift-check cache (lines "KEY<TAB>STAT SHA"; keys never hold a tab)
  local rel st k rest
  declare -gA CODE_STATS=() CODE_HASHES=()
  while IFS= read -r -d '' rel && IFS= read -r -d '' st; do
    CODE_STATS["$rel"]="$st"
  done < <(find "$1" -type f -printf '%P\0%s %T@ %C@ %i\0' 2>/dev/null)
  if [ -f "$2" ]; then
    while IFS=$'\t' read -r k rest; do CODE_HASHES["$k"]="$rest"; done <"$2"
  fi
}

# shellcheck disable=SC2034 # R_* are results for the caller
run_state() {
  # run_state RUN_DIR: sets R_STATE (running|exited|none), R_PID, R_EXIT, R_LOST
  local dir="$1" st=""
  R_STATE=none R_PID="" R_EXIT="" R_LOST=""
  [ -d "$dir" ] || return 0
  R_EXIT="$(read_first "$dir/exit_code")"
  if [ -f "$dir/pid" ]; then read -r R_PID st _ <"$dir/pid" || true; fi
  run_main "$dir"
  if [ -n "$R_PID" ] && run_alive "$R_PID" "$st"; then
    R_STATE=running
  elif [ -n "$R_EXIT" ]; then
    R_STATE=exited
  elif [ -z "$R_PID" ] && [ -d "$LOCK" ] && [ "$(read_first "$LOCK/owner")" = "${dir##*/}" ]; then
    R_STATE=running # its launcher is still starting it
  else
    R_STATE=exited
    R_LOST=1 # the process is gone without recording an exit code (killed, instance rebooted)
  fi
  if [ -n "$M_PID" ]; then R_PID="$M_PID"; fi # show the training's own PID, not the wrapper's
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
  # stop_signal: the wrapper was sent SIGTERM (runctl's stop, the guardian, a shutdown)
  if [ -f "$dir/stop_signal" ]; then printf ' stopped=1'; fi
  # the interpreter launch.sh chose (python_env.sh)
  if [ -f "$dir/python" ]; then printf ' python=%s' "$(pct "$(read_first "$dir/python")")"; fi
}
