#!/usr/bin/env bash
# sync_apply.sh PROJECT BUNDLE_URL [EXPECTED_SHA256]
#
# Apply a code bundle made by runctl_jupyter.sync.make_bundle to ROOT/runctl/PROJECT/code/:
#   1. download it (curl, URL given on curl's stdin config so it never shows in `ps`; the URL is
#      never printed). BUNDLE_URL "-" means: take it from the environment variable RUNCTL_SYNC_URL;
#   2. check its sha256 when EXPECTED_SHA256 is given;
#   3. refuse (exit 3) any member that is absolute, has a ".." component, or is not a regular
#      file or directory (tar-slip, links), before extracting into a staging directory;
#   4. delete each path of .runctl-delete only if it is in the OLD manifest (files runctl put
#      there) and resolves inside code/; anything else (outputs, checkpoints/) is never touched;
#   5. move the new files into place, then write the new manifest atomically (last, so an
#      interrupted apply leaves the old manifest and the next sync simply sends those files again);
#   6. if code/requirements.txt differs from ROOT/runctl/PROJECT/venv/.requirements.sha256 (or the venv
#      was built from another interpreter), create or refresh that venv (from the interpreter
#      python_env.sh chooses, with --system-site-packages: the image's PyTorch is used, not downloaded
#      again) and pip install -r; the last 12,000 bytes of pip's output are appended to stdout (all
#      of it in venv/.pip-install.log). A requirements.txt naming torch/torchvision/torchaudio when
#      that interpreter already has torch says so (@runctl torch_warning=…), and goes on.
#
# Reports:  @runctl kept=<relpath %-enc>   (per file deleted locally that the instance changed: kept)
#           @runctl synced=1 uploaded=N deleted=M refused_deletes=K kept_files=J
#           @runctl requirements=installed|unchanged|none|failed  [@runctl torch_warning=… python_base=…]
#           @runctl sync_cause=download|unsafe_bundle|requirements  (before a failure runctl has steps for)
# Exit: 0 ok · 2 usage · 3 refused (bad bundle / checksum) · 1 other failure (stderr says why).
set -u
umask 022
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97
# shellcheck source=python_env.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/python_env.sh" || exit 97

# A failure runctl has steps for says its cause as a field first (runctl never matches stderr's English).
refuse_bundle() {  # the bundle is unsafe or broken: nothing of it was written outside the staging dir
  printf '@runctl sync_cause=unsafe_bundle\n'
  die 3 "$@"
}
requirements_failed() {
  printf '@runctl sync_cause=requirements\n'
  die 1 "$@"
}

die() { printf 'sync_apply.sh: %s\n' "$2" >&2; exit "$1"; }

[ "$#" -ge 2 ] || die 2 "usage: sync_apply.sh PROJECT BUNDLE_URL [EXPECTED_SHA256]"
project=$1
url=$2
expected=${3:-}
if [ "$url" = "-" ]; then
    url=${RUNCTL_SYNC_URL:-}
fi
[ -n "$url" ] || die 2 "no bundle URL given"
[[ "$project" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$ ]] || die 2 "bad project name"
if [ -n "$expected" ] && ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]]; then
    die 2 "EXPECTED_SHA256 must be 64 lowercase hex digits"
fi
command -v curl >/dev/null 2>&1 || die 1 "curl is not installed on this instance"
command -v tar >/dev/null 2>&1 || die 1 "tar is not installed on this instance"

# ROOT: from common.sh (RUNCTL_ROOT, else HOME, else the image's login user)
proj_dir="$ROOT/runctl/$project"
code="$proj_dir/code"
manifest_name=".runctl-manifest.json"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum < "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 < "$1" | cut -d' ' -f1
    else
        openssl dgst -sha256 -r < "$1" | cut -d' ' -f1
    fi
}

mkdir -p -- "$code" || die 1 "cannot create $code"
code_real=$(cd -- "$code" && pwd -P) || die 1 "cannot enter $code"

# One sync at a time per project (released automatically if this process dies).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$proj_dir/.sync.lock" || die 1 "cannot open the sync lock"
    flock -w 120 9 || die 1 "another code sync of $project is still running"
fi

stage=$(mktemp -d "$proj_dir/.sync-stage.XXXXXX") || die 1 "cannot create a staging directory"
trap 'rm -rf -- "$stage"' EXIT
bundle="$stage/bundle.tar.gz"
extract="$stage/x"
mkdir -- "$extract" || die 1 "cannot create a staging directory"

# 1. download (the URL goes through curl's config on stdin; quotes/backslashes escaped for it)
esc_url=${url//\\/\\\\}
esc_url=${esc_url//\"/\\\"}
if ! printf 'url = "%s"\n' "$esc_url" | curl -fsS --retry 3 --connect-timeout 20 -K - -o "$bundle" 2>"$stage/curl.err"; then
    # curl's message names the host at most; keep only its first line and drop any query string
    msg=$(head -n 1 "$stage/curl.err" | sed 's/?[^ ]*//g')
    printf '@runctl sync_cause=download\n'
    die 1 "could not download the code bundle: ${msg:-curl failed}"
fi

# 2. checksum
if [ -n "$expected" ]; then
    got=$(sha256_of "$bundle")
    [ "$got" = "$expected" ] || refuse_bundle "code bundle checksum mismatch (expected $expected, got $got)"
fi

# 3. inspect members before extracting anything
listing="$stage/names"
tar -tzf "$bundle" > "$listing" 2>"$stage/tar.err" || refuse_bundle "the code bundle is not a valid tar.gz"
while IFS= read -r name; do
    case "$name" in
        /*) refuse_bundle "refusing code bundle: absolute member path '$name'" ;;
    esac
    IFS=/ read -r -a parts <<< "$name"
    for part in "${parts[@]}"; do
        [ "$part" != ".." ] || refuse_bundle "refusing code bundle: member path with '..': '$name'"
    done
done < "$listing"
tar -tvzf "$bundle" > "$stage/types" 2>/dev/null || refuse_bundle "the code bundle is not a valid tar.gz"
while IFS= read -r line; do
    case "${line:0:1}" in
        -|d) ;;
        *) refuse_bundle "refusing code bundle: member is a link or special file: ${line}" ;;
    esac
done < "$stage/types"
tar -xzf "$bundle" -C "$extract" --no-same-owner 2>"$stage/tar.err" || die 1 "could not extract the code bundle: $(head -n 1 "$stage/tar.err")"
# defence in depth: nothing but files and directories came out
if [ -n "$(find "$extract" ! -type f ! -type d -print -quit)" ]; then
    refuse_bundle "refusing code bundle: it holds links or special files"
fi
[ -f "$extract/$manifest_name" ] || refuse_bundle "refusing code bundle: no $manifest_name in it"
[ -f "$extract/.runctl-delete" ] || refuse_bundle "refusing code bundle: no .runctl-delete in it"

# Is DIR (an existing directory) inside code/ once symlinks are resolved?
inside_code() {
    local real
    real=$(cd -- "$1" 2>/dev/null && pwd -P) || return 1
    [ "$real" = "$code_real" ] || [[ "$real" == "$code_real/"* ]]
}

# A relative path made of ordinary components only.
safe_rel() {
    local p=$1 part
    [ -n "$p" ] || return 1
    case "$p" in /*|*//*) return 1 ;; esac
    IFS=/ read -r -a comps <<< "$p"
    for part in "${comps[@]}"; do
        case "$part" in ''|.|..) return 1 ;; esac
    done
    return 0
}

# 4. deletions, limited to the OLD manifest's keys. Manifest lines are `"<json-escaped path>": "<sha>"`
#    (written by sync.manifest_json: only \\ and \" escapes can occur).
declare -A old=()
old_manifest="$code/$manifest_name"
if [ -f "$old_manifest" ]; then
    entry_re='^"(.*)": "([0-9a-f]{64})",?$'
    while IFS= read -r line; do
        if [[ "$line" =~ $entry_re ]]; then
            old["${BASH_REMATCH[1]}"]=${BASH_REMATCH[2]}
        fi
    done < "$old_manifest"
fi
bs="\\"
dq='"'
deleted=0
refused=0
kept=0
while IFS= read -r -d '' rel; do
    key=${rel//"$bs"/"$bs$bs"}
    key=${key//"$dq"/"$bs$dq"}
    if ! safe_rel "$rel" || [ -z "${old["$key"]+x}" ]; then
        refused=$((refused + 1))
        printf 'sync_apply.sh: not deleting %s (not a file runctl synced)\n' "$rel" >&2
        continue
    fi
    target="$code/$rel"
    parent=$(dirname -- "$target")
    if [ ! -d "$parent" ]; then
        continue
    fi
    if ! inside_code "$parent"; then
        refused=$((refused + 1))
        printf 'sync_apply.sh: not deleting %s (outside the code directory)\n' "$rel" >&2
        continue
    fi
    if [ -f "$target" ] && [ ! -L "$target" ] && [ "$(sha256_of "$target")" != "${old["$key"]}" ]; then
        # the training (or someone) rewrote what runctl once put there: its work, never deleted
        printf '@runctl kept=%s\n' "$(pct "$rel")"
        kept=$((kept + 1))
        continue
    fi
    if [ -f "$target" ] || [ -L "$target" ]; then
        rm -f -- "$target" || die 1 "could not delete $rel"
        deleted=$((deleted + 1))
        # remove directories the deletion emptied, up to (not including) code/
        d=$parent
        while [ "$d" != "$code" ] && [[ "$d" == "$code/"* ]]; do
            rmdir -- "$d" 2>/dev/null || break
            d=$(dirname -- "$d")
        done
    fi
done < "$extract/.runctl-delete"

# 5. move new files into place
uploaded=0
declare -A checked_dirs=() placed=()
if [ -d "$extract/files" ]; then
    while IFS= read -r -d '' src; do
        rel=${src#"$extract/files/"}
        safe_rel "$rel" || refuse_bundle "refusing code bundle member '$rel'"
        dest="$code/$rel"
        dest_dir=${dest%/*}
        # Each distinct directory is checked and created once (a 1,000-file project has few).
        if [ -z "${checked_dirs[$dest_dir]+x}" ]; then
            anc=$dest_dir
            while [ -n "$anc" ] && [ ! -e "$anc" ] && [ ! -L "$anc" ]; do anc=${anc%/*}; done
            inside_code "$anc" || refuse_bundle "refusing to write $rel: its directory leads outside the code directory"
            mkdir -p -- "$dest_dir" || die 1 "cannot create the directory for $rel (a file is in the way?)"
            inside_code "$dest_dir" || refuse_bundle "refusing to write $rel: its directory leads outside the code directory"
            checked_dirs[$dest_dir]=1
        fi
        if [ -d "$dest" ] && [ ! -L "$dest" ]; then
            die 1 "cannot place $rel: a directory of that name is in the way on the instance"
        fi
        mv -f -- "$src" "$dest" || die 1 "could not place $rel"
        # the bundle's members carry mtime 0 (deterministic bundles): give the file the time it
        # arrived, and drop its compiled copy, or Python keeps running a same-size old version
        touch -- "$dest" || die 1 "could not set the time of $rel"
        case "$dest" in
            *.py) base=${dest##*/}; rm -f -- "${dest%/*}/__pycache__/${base%.py}".*.pyc ;;
        esac
        placed["$rel"]=1
        uploaded=$((uploaded + 1))
    done < <(find "$extract/files" -type f -print0)
fi

# new manifest, atomically
cp -- "$extract/$manifest_name" "$code/.$manifest_name.tmp" || die 1 "could not write the manifest"
mv -f -- "$code/.$manifest_name.tmp" "$code/$manifest_name" || die 1 "could not write the manifest"

# seed sync_manifest.sh's drift-check hash cache with the files placed just now (their hashes are the
# manifest's, checked when the bundle was made), so the next sync reads none of them again
seed_hash_cache() {
    local cache="$proj_dir/.code-hashes" k rel line
    local entry_re='^"(.*)": "([0-9a-f]{64})",?$'
    local -A fresh=()
    code_stats_and_hashes "$code" "$cache"
    while IFS= read -r line; do
        [[ "$line" =~ $entry_re ]] || continue
        k=${BASH_REMATCH[1]}
        rel=${k//"$bs$dq"/"$dq"}
        rel=${rel//"$bs$bs"/"$bs"}
        if [ -n "${placed[$rel]+x}" ] && [ -n "${CODE_STATS[$rel]:-}" ]; then
            fresh["$k"]="${CODE_STATS[$rel]} ${BASH_REMATCH[2]}"
        elif [ -n "${CODE_HASHES[$k]:-}" ]; then
            fresh["$k"]=${CODE_HASHES[$k]}
        fi
    done < "$code/$manifest_name"
    for k in "${!fresh[@]}"; do printf '%s\t%s\n' "$k" "${fresh[$k]}"; done > "$cache.tmp.$$" 2>/dev/null
    mv -f -- "$cache.tmp.$$" "$cache" 2>/dev/null || rm -f -- "$cache.tmp.$$"
}
seed_hash_cache

printf '@runctl synced=1 uploaded=%s deleted=%s refused_deletes=%s kept_files=%s\n' "$uploaded" "$deleted" "$refused" "$kept"

# 6. requirements: the project's venv, on the interpreter the training runs with (python_env.sh)
if [ ! -f "$code/requirements.txt" ]; then
    printf '@runctl requirements=none\n'
    exit 0
fi
python_base || requirements_failed "requirements.txt needs a Python: $PY_ERROR"
install_requirements "$proj_dir" || die 1 "$PY_ERROR"
exit 0
