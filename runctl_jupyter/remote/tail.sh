#!/usr/bin/env bash
# tail.sh LOG_PATH OFFSET MAX_BYTES [ENC]
#
# Print one chunk of a run's log, read by byte offset, for runctl_jupyter.logs.decode_chunk:
#
#   @runctl size=<file size> offset=<OFFSET> count=<raw bytes in chunk> exit_code=<int or empty> enc=<enc>
#   @runctl-data
#   <the chunk, base64 (of gzip data when enc=gzip+base64)>
#
# MAX_BYTES bounds the *payload before base64* (clamped to RUNCTL_MAX_CHUNK_BYTES, 17700), so stdout
# never exceeds header + 4*ceil(17700/3) = header + 23600 characters: always under SSM's 24,000-character limit.
# ENC is "auto" (default: gzip when it makes the chunk smaller) or "base64" (never compress).
# With gzip the raw window grows (up to 16 * MAX_BYTES) as long as the compressed chunk fits.
#
# exit_code comes from the file `exit_code` beside the log, and is read BEFORE the size: if a run
# has ended (its exit code is written after its log is closed), the size printed is final, so
# "exit_code known and offset == size" reliably means the whole log has been seen.
set -u
# the numbers runctl's Python side shares with the scripts (generated from limits.py)
# shellcheck source=limits.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/limits.sh" || exit 97

HARD_MAX=$RUNCTL_MAX_CHUNK_BYTES
WINDOW_FACTOR=$RUNCTL_TAIL_WINDOW_FACTOR

die() { printf 'tail.sh: %s\n' "$1" >&2; exit 2; }

[ "$#" -ge 3 ] || die "usage: tail.sh LOG_PATH OFFSET MAX_BYTES [auto|base64]"
log=$1
offset=$2
max=$3
enc_mode=${4:-auto}

case "$offset" in ''|*[!0-9]*) die "OFFSET must be a non-negative integer" ;; esac
case "$max" in ''|*[!0-9]*) die "MAX_BYTES must be a positive integer" ;; esac
[ "${#offset}" -le 18 ] || die "OFFSET too large"
[ "${#max}" -le 9 ] || max=$HARD_MAX
offset=$((10#$offset))
max=$((10#$max))
[ "$max" -gt 0 ] || die "MAX_BYTES must be a positive integer"
[ "$max" -le "$HARD_MAX" ] || max=$HARD_MAX
case "$enc_mode" in auto|base64) ;; *) die "ENC must be auto or base64" ;; esac
if [ "$enc_mode" = auto ] && ! command -v gzip >/dev/null 2>&1; then
    enc_mode=base64
fi

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
size=0
exists=0
if [ -f "$log" ]; then
    exists=1
    size=$(wc -c < "$log" | tr -d ' \t\r\n') || die "cannot read $log"
    case "$size" in ''|*[!0-9]*) die "cannot measure $log" ;; esac
fi

avail=0
if [ "$size" -gt "$offset" ]; then
    avail=$((size - offset))
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/runctl-tail.XXXXXX") || die "mktemp failed"
trap 'rm -rf -- "$tmpdir"' EXIT
raw="$tmpdir/raw"
cut="$tmpdir/cut"
gz="$tmpdir/gz"
payload="$raw"
enc=base64
count=0

fsize() { wc -c < "$1" | tr -d ' \t\r\n'; }

if [ "$avail" -gt 0 ]; then
    if [ "$enc_mode" = auto ]; then
        window=$((max * WINDOW_FACTOR))
    else
        window=$max
    fi
    [ "$window" -le "$avail" ] || window=$avail
    # Read the largest window once; smaller tries are prefixes of it. The file only grows,
    # so the first `window` bytes from `offset` exist.
    tail -c "+$((offset + 1))" -- "$log" 2>/dev/null | head -c "$window" > "$raw"
    got=$(fsize "$raw")
    [ "$got" -eq "$window" ] || die "short read at offset $offset ($got of $window bytes)"

    if [ "$enc_mode" = base64 ]; then
        count=$window
    else
        try=$window
        tries=0
        while :; do
            tries=$((tries + 1))
            head -c "$try" -- "$raw" > "$cut"
            gzip -n -c -6 < "$cut" > "$gz" || die "gzip failed"
            gsize=$(fsize "$gz")
            if [ "$try" -le "$max" ]; then
                # Raw would fit as well: send whichever is smaller.
                count=$try
                if [ "$gsize" -lt "$try" ]; then
                    payload="$gz"
                    enc="gzip+base64"
                else
                    payload="$cut"
                fi
                break
            fi
            if [ "$gsize" -le "$max" ]; then
                count=$try
                payload="$gz"
                enc="gzip+base64"
                break
            fi
            # Too big: shrink in proportion (with a margin), and fall back to raw after 4 tries.
            next=$((try * max * 7 / (gsize * 8)))
            if [ "$tries" -ge 4 ] || [ "$next" -le "$max" ]; then
                next=$max
            fi
            [ "$next" -lt "$try" ] || next=$((try / 2))
            [ "$next" -ge 1 ] || next=1
            try=$next
        done
    fi
    if [ "$payload" = "$raw" ] && [ "$count" -ne "$window" ]; then
        head -c "$count" -- "$raw" > "$cut"
        payload="$cut"
    fi
fi

printf '@runctl size=%s offset=%s count=%s exit_code=%s enc=%s exists=%s\n' \
    "$size" "$offset" "$count" "$exit_code" "$enc" "$exists"
printf '@runctl-data\n'
if [ "$count" -gt 0 ]; then
    base64 < "$payload" | tr -d '\n' || die "base64 failed"
    printf '\n'
fi
exit 0
