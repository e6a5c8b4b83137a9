#!/usr/bin/env bash
# fetch_checkpoint.sh PROJECT RELPATH
# Download one checkpoint (to resume from) into ROOT/runctl/PROJECT/checkpoints/RELPATH with curl, from the
# presigned GET in RUNCTL_FETCH_URL (a secret: never printed, never in argv — curl reads it from stdin).
# Written atomically (temp file + rename); RUNCTL_FETCH_MD5 (optional) is checked first.
# stdout: the absolute path of the file (exit 0). errors: one line on stderr; exit 2 (usage), 4 (download).
set -u
ROOT="${RUNCTL_ROOT:-${HOME:-}}"
die() {
  local code="$1"
  shift
  printf 'runctl: %s\n' "$*" >&2
  exit "$code"
}
[ "$#" -eq 2 ] || die 2 "usage: fetch_checkpoint.sh PROJECT RELPATH"
[ -n "$ROOT" ] || die 2 "neither RUNCTL_ROOT nor HOME is set"
PROJECT="$1"
REL="$2"
case "$PROJECT" in '' | . | .. | -* | */*) die 2 "invalid project name" ;; esac
case "/$REL/" in // | */../* | */./* | //*) die 2 "invalid checkpoint path" ;; esac
[ -n "${RUNCTL_FETCH_URL:-}" ] || die 2 "RUNCTL_FETCH_URL is not set"
dest="$ROOT/runctl/$PROJECT/checkpoints/$REL"
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
mv -f -- "$tmp" "$dest" || die 4 "cannot write $dest"
printf '%s\n' "$dest"
