#!/usr/bin/env bash
# python_env.sh: which Python a training runs with (sourced by launch.sh and sync_apply.sh, after
# common.sh; never run on its own).
#
# The base interpreter, first found:
#   1. RUNCTL_PYTHON: the `python` setting / `train --python` (a path, or a name on the PATH);
#   2. what an earlier run detected on this instance (ROOT/runctl/python: path, then how it was found);
#   3. the image's own PyTorch environment: the Deep Learning AMIs keep PyTorch outside the system
#      python3 (/opt/pytorch/bin/python; the older conda images /opt/conda/envs/pytorch/bin/python);
#      RUNCTL_DLAMI_PYTHONS (space-separated paths) replaces that list;
#   4. python3 on the PATH (SSM's: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin).
# A project with a requirements.txt runs in its own venv, built from that base with
# --system-site-packages and a .pth that adds the base's own site-packages (the DLAMI's PyTorch
# environment is itself a venv, whose packages a nested venv would not see): the image's multi-GB
# wheels are used, not downloaded again.
# shellcheck disable=SC2034 # PY_* are results for the scripts that source this file

PY_DLAMI_DEFAULT="/opt/pytorch/bin/python /opt/conda/envs/pytorch/bin/python"
PY_TORCH_PACKAGES_RE='^[[:space:]]*(torch|torchvision|torchaudio)([^a-z0-9._-]|$)'

python_base() {
  # sets PY_BASE (a path) and PY_SOURCE (setting|image|system); on failure PY_ERROR says why
  local want="${RUNCTL_PYTHON:-}" cache="$RUNCTL_DIR/python" cached="" source="" p
  local -a candidates=()
  PY_BASE="" PY_SOURCE="" PY_ERROR=""
  if [ -n "$want" ]; then
    PY_SOURCE=setting
    case "$want" in
      */*)
        [ -x "$want" ] || { PY_ERROR="python not found: $want (set the python setting or --python to an installed interpreter)"; return 1; }
        PY_BASE="$want"
        ;;
      *)
        PY_BASE="$(command -v -- "$want" 2>/dev/null)" || PY_BASE=""
        [ -n "$PY_BASE" ] || { PY_ERROR="$want not found on the instance: install it or set --python to a path"; return 1; }
        ;;
    esac
    return 0
  fi
  if [ -f "$cache" ]; then
    { IFS= read -r cached || true; IFS= read -r source || true; } 2>/dev/null <"$cache"
    if [ -n "$cached" ] && [ -x "$cached" ]; then
      PY_BASE="$cached" PY_SOURCE="${source:-system}"
      return 0
    fi
  fi
  read -r -a candidates <<<"${RUNCTL_DLAMI_PYTHONS-$PY_DLAMI_DEFAULT}"
  for p in "${candidates[@]}"; do
    if [ -x "$p" ]; then
      PY_BASE="$p" PY_SOURCE=image
      break
    fi
  done
  if [ -z "$PY_BASE" ]; then
    PY_BASE="$(command -v python3 2>/dev/null)" || PY_BASE=""
    [ -n "$PY_BASE" ] || { PY_ERROR="python3 not found on the instance: install python3 or set the python setting"; return 1; }
    PY_SOURCE=system
  fi
  # detected once per instance (the image does not change under it); a path that went away is detected again
  if [ -d "$RUNCTL_DIR" ]; then write_atomic "$cache" "$PY_BASE"$'\n'"$PY_SOURCE"$'\n' 2>/dev/null || true; fi
  return 0
}

python_has_torch() {
  # python_has_torch PYTHON [DIR]: torch is importable by PYTHON (run in DIR, as the training is);
  # find_spec only: torch itself is not imported (seconds, on a GPU image)
  (cd -- "${2:-/}" 2>/dev/null && "$1" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)') \
    >/dev/null 2>&1
}

torch_in_requirements() {
  # torch_in_requirements FILE: prints the PyTorch packages FILE names (comma-separated), if any
  local line name found=""
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    if [[ "${line,,}" =~ $PY_TORCH_PACKAGES_RE ]]; then
      name="${BASH_REMATCH[1]}"
      case ",$found," in *",$name,"*) ;; *) found="${found:+$found,}$name" ;; esac
    fi
  done <"$1"
  printf '%s' "$found"
}

venv_base_matches() {
  # venv_base_matches VENV: VENV was built by runctl from PY_BASE (or by an older runctl, which
  # recorded no base: kept as it is)
  [ -x "$1/bin/python" ] || return 1
  [ ! -f "$1/.runctl-base" ] || [ "$(read_first "$1/.runctl-base")" = "$PY_BASE" ]
}

venv_link_base() {
  # venv_link_base VENV: a .pth in VENV's site-packages that adds PY_BASE's own site-packages after
  # VENV's (site.addsitedir: the base's .pth files count too). Nothing when the base is a system Python
  # (--system-site-packages covers it); best effort: a venv without it still runs.
  local site pth
  site="$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)" || return 0
  [ -d "$site" ] || return 0
  pth="$("$PY_BASE" -c 'import sys, sysconfig
if sys.prefix != sys.base_prefix:
    paths = sysconfig.get_paths()
    for p in dict.fromkeys((paths["purelib"], paths["platlib"])):
        print("import site; site.addsitedir(%r)" % p)' 2>/dev/null)" || return 0
  if [ -n "$pth" ]; then printf '%s\n' "$pth" >"$site/_runctl_base_python.pth" || true; fi
}

install_requirements() {
  # install_requirements PROJECT_DIR: the project venv for CODE/requirements.txt (after python_base):
  # created from PY_BASE when missing or built from another base, pip install -r when the file or the
  # base changed. Prints @runctl requirements=none|unchanged|installed|failed, @runctl torch_warning=…
  # when the file names PyTorch packages the base already has, and pip's last 12,000 bytes.
  # Fails (PY_ERROR) when the venv or pip failed, after printing @runctl sync_cause=requirements.
  local proj="$1" venv="$1/venv" req="$1/code/requirements.txt" req_sha old_sha="" torch pip_log pip_rc
  if [ ! -f "$req" ]; then
    printf '@runctl requirements=none\n'
    return 0
  fi
  req_sha="$(sha256sum <"$req" | cut -d' ' -f1)"
  if venv_base_matches "$venv" && [ -f "$venv/.requirements.sha256" ] && [ -x "$venv/bin/pip" ]; then
    old_sha="$(head -c 64 -- "$venv/.requirements.sha256")"
  fi
  if [ "$req_sha" = "$old_sha" ]; then
    printf '@runctl requirements=unchanged\n'
    return 0
  fi
  torch="$(torch_in_requirements "$req")"
  if [ -n "$torch" ] && python_has_torch "$PY_BASE" "$proj/code"; then
    printf '@runctl torch_warning=%s python_base=%s\n' "$(pct "$torch")" "$(pct "$PY_BASE")"
    printf '[runctl] warning: requirements.txt names %s, but %s already has torch: pip may install another build over the image'"'"'s\n' \
      "$torch" "$PY_BASE"
  fi
  if [ -e "$venv" ] && ! venv_base_matches "$venv"; then rm -rf -- "$venv"; fi
  if [ ! -x "$venv/bin/pip" ]; then
    if ! "$PY_BASE" -m venv --system-site-packages "$venv" 2>&1; then
      printf '@runctl sync_cause=requirements\n'
      PY_ERROR="$PY_BASE -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
      return 1
    fi
    venv_link_base "$venv"
    write_atomic "$venv/.runctl-base" "$PY_BASE"$'\n' || true
  fi
  rm -f -- "$venv/.requirements.sha256"
  # Full pip output goes to a log; its last 12,000 bytes are printed (SSM keeps 24,000 characters,
  # so the report lines around it survive).
  pip_log="$venv/.pip-install.log"
  "$venv/bin/pip" install --disable-pip-version-check -r "$req" >"$pip_log" 2>&1
  pip_rc=$?
  tail -c 12000 -- "$pip_log"
  printf '\n'
  if [ "$pip_rc" -ne 0 ]; then
    printf '@runctl requirements=failed\n@runctl sync_cause=requirements\n'
    PY_ERROR="pip install -r requirements.txt failed (exit $pip_rc; output above, full log in $pip_log)"
    return 1
  fi
  write_atomic "$venv/.requirements.sha256" "$req_sha"$'\n' || true
  printf '@runctl requirements=installed\n'
  return 0
}

json_str() {
  # json_str TEXT: TEXT as a JSON string (quotes, backslashes and control characters escaped)
  local LC_ALL=C s="$1" out="" c i n
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      '"') out+='\"' ;;
      "\\") out+="\\\\" ;;
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
