#!/usr/bin/env bash
# log_upload.sh LOG_PATH OFFSET MAX_BYTES  < one line: a presigned S3 PUT URL
#
# Catch-up for a long log (runctl_jupyter/log_catchup.py): instead of many SSM round trips of
# tail.sh, upload the byte range [OFFSET, min(size, OFFSET + MAX_BYTES)) of the log in ONE PUT to
# the presigned URL (gzip'd when gzip is there), and report what was sent:
#
#   @runctl size=<file size> offset=<OFFSET> count=<raw bytes> exit_code=<int or empty> enc=<gzip|raw> sha256=<hex of the raw bytes> uploaded=1
#
# or `@runctl uploaded=0 reason=<%-encoded>` (exit 1). runctl downloads the object once and checks
# count and sha256 before showing a byte of it. As in tail.sh, the exit code is read BEFORE the size:
# when a run has ended its size is final, so "exit_code known and offset + count == size" means the
# whole log has been read. The URL is a secret: it comes on stdin (never in an argv `ps` shows),
# reaches curl on its stdin (-K -), and is never printed.
set -u
# the numbers runctl's Python side shares with the scripts (generated from limits.py)
# shellcheck source=limits.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/limits.sh" || exit 97

HARD_MAX=$RUNCTL_MAX_LOG_PUT_BYTES   # a single PUT holds at most 5 GB

fail() { printf '@runctl uploaded=0 reason=%s\n' "$(printf '%s' "$1" | od -An -tx1 | tr -d ' \n' | sed 's/../%&/g')"; exit 1; }
die() { printf 'log_upload.sh: %s\n' "$1" >&2; exit 2; }

[ "$#" -eq 3 ] || die "usage: log_upload.sh LOG_PATH OFFSET MAX_BYTES < URL"
log=$1
offset=$2
max=$3
case "$offset" in ''|*[!0-9]*) die "OFFSET must be a non-negative integer" ;; esac
case "$max" in ''|*[!0-9]*) die "MAX_BYTES must be a positive integer" ;; esac
[ "${#offset}" -le 18 ] || die "OFFSET too large"
[ "${#max}" -le 10 ] || max=$HARD_MAX
offset=$((10#$offset))
max=$((10#$max))
[ "$max" -gt 0 ] || die "MAX_BYTES must be a positive integer"
[ "$max" -le "$HARD_MAX" ] || max=$HARD_MAX

IFS= read -r url || [ -n "${url:-}" ] || die "no URL on stdin"
[ -n "$url" ] || die "no URL on stdin"

# 1. The exit code first (see above). Only a plain integer counts.
exit_code=""
ec_file="$(dirname -- "$log")/exit_code"
if [ -f "$ec_file" ]; then
    raw_ec=$(head -c 32 -- "$ec_file" 2>/dev/null | tr -d ' \t\r\n')
    if [[ "$raw_ec" =~ ^-?[0-9]{1,10}$ ]]; then
        exit_code=$raw_ec
    fi
fi

# 2. Then the size.
[ -f "$log" ] || fail "the log does not exist"
size=$(wc -c < "$log" | tr -d ' \t\r\n') || fail "cannot read the log"
case "$size" in ''|*[!0-9]*) fail "cannot measure the log" ;; esac
[ "$size" -ge "$offset" ] || fail "offset $offset lies beyond the log's size $size"
count=$((size - offset))
[ "$count" -le "$max" ] || count=$max

work=$(mktemp -d "${TMPDIR:-/tmp}/runctl-logup.XXXXXX") || fail "no temporary folder"
trap 'rm -rf -- "$work"' EXIT
# the file only grows: the first `count` bytes from `offset` exist
tail -c "+$((offset + 1))" -- "$log" 2>/dev/null | head -c "$count" > "$work/raw"
got=$(wc -c < "$work/raw" | tr -d ' \t\r\n')
[ "$got" -eq "$count" ] || fail "short read at offset $offset ($got of $count bytes)"
read -r sha _ < <(sha256sum < "$work/raw") || fail "sha256sum failed"

body="$work/raw"
enc=raw
if command -v gzip >/dev/null 2>&1 && gzip -n -c -1 < "$work/raw" > "$work/gz"; then
    body="$work/gz"
    enc=gzip
fi

printf 'url = "%s"\n' "${url//\"/\\\"}" |
    curl -fsS --retry 3 --retry-delay 1 -X PUT -T "$body" -o /dev/null -K - 2>/dev/null ||
    fail "the upload to S3 failed (curl exit $?)"

printf '@runctl size=%s offset=%s count=%s exit_code=%s enc=%s sha256=%s uploaded=1\n' \
    "$size" "$offset" "$count" "$exit_code" "$enc" "$sha"
exit 0
