#!/usr/bin/env bash
# fetch_checkpoint.sh PROJECT RELPATH
# The checkpoint to resume from: the newest of the instance's own checkpoints and S3's newest copy
# (RELPATH, from the presigned GET in RUNCTL_FETCH_URL: a secret, never printed, never in argv —
# curl reads it from stdin; RUNCTL_FETCH_MTIME: its LastModified, epoch seconds; RUNCTL_FETCH_MD5:
# its MD5, optional). A file on the instance is never overwritten: when the instance has a newer
# checkpoint it is used and nothing is downloaded; when RELPATH exists with other content, S3's copy
# is written beside it under from-s3/RELPATH. Downloads are atomic (temp file + rename), checked.
# stdout: the absolute path of the checkpoint to resume from (exit 0); a line on stderr says which.
# errors: one line on stderr; exit 2 (usage), 4 (download).
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 2 ] || die 2 "usage: fetch_checkpoint.sh PROJECT RELPATH"
PROJECT="$1"
REL="$2"
valid_name "$PROJECT" || die 2 "invalid project name"
case "/$REL/" in // | */../* | */./* | //*) die 2 "invalid checkpoint path" ;; esac
[ -n "${RUNCTL_FETCH_URL:-}" ] || die 2 "RUNCTL_FETCH_URL is not set"
CK_DIR="$(checkpoint_dir "$PROJECT")"
dest="$CK_DIR/$REL"

# the instance's own newest checkpoint wins when it is at least as new as S3's (never-uploaded work)
local_newest="$(newest_checkpoint "$CK_DIR")"
if [ -n "$local_newest" ] && is_uint "${RUNCTL_FETCH_MTIME:-}"; then
  local_mtime="$(stat -L -c %Y -- "$CK_DIR/$local_newest" 2>/dev/null || printf 0)"
  if [ "$local_mtime" -ge "$RUNCTL_FETCH_MTIME" ]; then
    printf 'runctl: resuming from the instance'"'"'s own %s (as new as S3'"'"'s newest, or newer)\n' "$local_newest" >&2
    printf '%s\n' "$CK_DIR/$local_newest"
    exit 0
  fi
fi
if [ -f "$dest" ]; then
  read -r sum _ < <(md5sum <"$dest")
  if [ -n "${RUNCTL_FETCH_MD5:-}" ] && [ "$sum" = "$RUNCTL_FETCH_MD5" ]; then
    printf 'runctl: resuming from %s (the instance already has S3'"'"'s copy)\n' "$REL" >&2
    printf '%s\n' "$dest"
    exit 0
  fi
  dest="$CK_DIR/from-s3/$REL" # S3's newer copy goes beside the instance's file, never over it
  [ ! -e "$dest" ] || die 4 "both $REL and from-s3/$REL exist on the instance; move one away, then resume"
fi
mkdir -p -- "$(dirname -- "$dest")" || die 4 "cannot create $(dirname -- "$dest")"
tmp="$(dirname -- "$dest")/.$(basename -- "$dest").tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
printf 'url = "%s"\n' "${RUNCTL_FETCH_URL//\"/\\\"}" |
  curl -sS -f -m 600 --retry 3 --retry-delay 1 -o "$tmp" -K - 2>/dev/null ||
  die 4 "could not download the checkpoint $REL (presigned GET failed)"
if [ -n "${RUNCTL_FETCH_MD5:-}" ]; then
  read -r sum _ < <(md5sum <"$tmp")
  [ "$sum" = "$RUNCTL_FETCH_MD5" ] || die 4 "the downloaded $REL does not match its md5 in S3"
fi
mv -n -- "$tmp" "$dest" && [ ! -e "$tmp" ] || die 4 "cannot write $dest (a file appeared there)"
printf 'runctl: resuming from S3'"'"'s %s\n' "${dest#"$CK_DIR"/}" >&2
printf '%s\n' "$dest"
