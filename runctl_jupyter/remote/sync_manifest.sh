#!/usr/bin/env bash
# sync_manifest.sh PROJECT [KNOWN_SHA256] [OFFSET] [MAX_BYTES]
#
# Report the code manifest ROOT/runctl/PROJECT/code/.runctl-manifest.json (for runctl_jupyter.sync
# .read_remote_manifest). Three answers:
#
#   @runctl manifest=0 match=0                              no manifest (nothing synced yet)
#   @runctl manifest=1 match=1 manifest_sha256=<hex>        it is KNOWN_SHA256: the caller's cached
#                                                           copy is current (one short reply)
#   @runctl manifest=1 match=0 manifest_sha256=<hex> files=<n> size=<bytes> offset=<OFFSET>
#           count=<raw bytes> exit_code= enc=<base64|gzip+base64>
#   @runctl-data
#   <base64 of the raw manifest bytes [OFFSET, OFFSET+count) (gzip'ed when enc says so)>
#
# The page format is tail.sh's, so it stays under SSM's 24,000-character stdout limit. With OFFSET 0,
# first `@runctl drifted=<relpath %-enc> [gone=1]` lines (at most 200) and `@runctl drift_total=N`: the files
# the manifest lists whose content on the instance is not what it says (changed there, or gone).
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

# the numbers runctl's Python side shares with the scripts (generated from limits.py)
# shellcheck source=limits.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/limits.sh" || exit 97

HARD_MAX=$RUNCTL_MAX_CHUNK_BYTES
WINDOW_FACTOR=3

die() { printf 'sync_manifest.sh: %s\n' "$1" >&2; exit 2; }

[ "$#" -ge 1 ] || die "usage: sync_manifest.sh PROJECT [KNOWN_SHA256] [OFFSET] [MAX_BYTES]"
project=$1
known=${2:-}
offset=${3:-0}
max=${4:-$HARD_MAX}

[[ "$project" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$ ]] || die "bad project name"
case "$offset" in ''|*[!0-9]*) die "OFFSET must be a non-negative integer" ;; esac
case "$max" in ''|*[!0-9]*) die "MAX_BYTES must be a positive integer" ;; esac
[ "${#offset}" -le 18 ] || die "OFFSET too large"
[ "${#max}" -le 9 ] || max=$HARD_MAX
offset=$((10#$offset))
max=$((10#$max))
[ "$max" -gt 0 ] || die "MAX_BYTES must be a positive integer"
[ "$max" -le "$HARD_MAX" ] || max=$HARD_MAX

ROOT="${RUNCTL_ROOT:-$HOME}"
manifest="$ROOT/runctl/$project/code/.runctl-manifest.json"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum < "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 < "$1" | cut -d' ' -f1
    else
        openssl dgst -sha256 -r < "$1" | cut -d' ' -f1
    fi
}
fsize() { wc -c < "$1" | tr -d ' \t\r\n'; }

if [ ! -f "$manifest" ]; then
    printf '@runctl manifest=0 match=0\n'
    exit 0
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/runctl-manifest.XXXXXX") || die "mktemp failed"
trap 'rm -rf -- "$tmpdir"' EXIT
snap="$tmpdir/manifest"
cp -- "$manifest" "$snap" || die "cannot read the manifest"
sha=$(sha256_of "$snap")
[[ "$sha" =~ ^[0-9a-f]{64}$ ]] || die "cannot checksum the manifest"

# Drift: a file the manifest lists that is not what runctl put there any more (the training rewrote
# it, or it is gone). Its hash is cached by (size, mtime, ctime, inode), so an unchanged project is
# not read again. At most DRIFT_MAX lines; drift_total says how many there are in all.
DRIFT_MAX=200
# HASHED=(the sha256 of each file named, in order) from one sha256sum over them all (not a process per
# file: a first check of thousands of files takes a second, not half a minute); 1 when that cannot give
# every one (no GNU sha256sum, a file unreadable or gone meanwhile): then the caller hashes one by one.
hash_files() {
    local line
    HASHED=()
    [ "$#" -gt 0 ] || return 0
    command -v sha256sum >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1 || return 1
    while IFS= read -r line; do
        line=${line#"\\"} # a name with a backslash or newline: GNU escapes it and marks the line with one
        [[ "${line:0:65}" =~ ^[0-9a-f]{64}\ $ ]] || return 1
        HASHED+=("${line:0:64}")
    done < <(printf '%s\0' "$@" | xargs -0 sha256sum -- 2>/dev/null)
    [ "${#HASHED[@]}" -eq "$#" ]
}
drift_report() {
    local code="$ROOT/runctl/$project/code" cache="$ROOT/runctl/$project/.code-hashes"
    local entry_re='^"(.*)": "([0-9a-f]{64})",?$' line key rel st got n=0 total=0 k rest i
    local bs="\\" dq='"'
    local -A seen=()
    local -a keys=() rels=() wants=() gots=() todo=() todo_at=()
    code_stats_and_hashes "$code" "$cache"
    while IFS= read -r line; do
        [[ "$line" =~ $entry_re ]] || continue
        key=${BASH_REMATCH[1]} # JSON-escaped (only \\ and \"), never a tab or newline
        rel=${key//"$bs$dq"/"$dq"}
        rel=${rel//"$bs$bs"/"$bs"}
        st=${CODE_STATS["$rel"]:-}
        got=missing
        if [ -n "$st" ]; then
            rest=${CODE_HASHES["$key"]:-}
            if [ -n "$rest" ] && [ "${rest% *}" = "$st" ]; then
                got=${rest##* }
            else
                got=""  # hashed below, with every other file the cache does not know
                todo+=("$code/$rel")
                todo_at+=("${#keys[@]}")
            fi
        fi
        keys+=("$key") rels+=("$rel") wants+=("${BASH_REMATCH[2]}") gots+=("$got")
        seen["$key"]=1
    done < "$snap"
    if ! hash_files "${todo[@]}"; then
        HASHED=()
        for rel in "${todo[@]}"; do HASHED+=("$(sha256_of "$rel")"); done
    fi
    for i in "${!todo_at[@]}"; do
        k=${todo_at[$i]}
        gots[k]=${HASHED[$i]}
        CODE_HASHES["${keys[k]}"]="${CODE_STATS["${rels[k]}"]} ${HASHED[$i]}"
    done
    for i in "${!keys[@]}"; do
        if [ "${gots[i]}" != "${wants[i]}" ]; then
            total=$((total + 1))
            if [ "$n" -lt "$DRIFT_MAX" ]; then
                if [ "${gots[i]}" = missing ]; then
                    printf '@runctl drifted=%s gone=1\n' "$(pct "${rels[i]}")"
                else
                    printf '@runctl drifted=%s\n' "$(pct "${rels[i]}")"
                fi
                n=$((n + 1))
            fi
        fi
    done
    for k in "${!CODE_HASHES[@]}"; do
        if [ -n "${seen[$k]+x}" ]; then printf '%s\t%s\n' "$k" "${CODE_HASHES[$k]}"; fi
    done > "$cache.tmp.$$" 2>/dev/null
    mv -f -- "$cache.tmp.$$" "$cache" 2>/dev/null || rm -f -- "$cache.tmp.$$"
    printf '@runctl drift_total=%s\n' "$total"
}
if [ "$offset" -eq 0 ]; then drift_report; fi

if [ "$sha" = "$known" ]; then
    printf '@runctl manifest=1 match=1 manifest_sha256=%s\n' "$sha"
    exit 0
fi

size=$(fsize "$snap")
files=$(grep -c '^"' "$snap")
avail=0
[ "$size" -le "$offset" ] || avail=$((size - offset))
count=0
enc=base64
payload="$tmpdir/cut"
: > "$payload"
if [ "$avail" -gt 0 ]; then
    window=$max
    command -v gzip >/dev/null 2>&1 && window=$((max * WINDOW_FACTOR))
    [ "$window" -le "$avail" ] || window=$avail
    tail -c "+$((offset + 1))" -- "$snap" | head -c "$window" > "$tmpdir/raw"
    try=$window
    tries=0
    while :; do
        tries=$((tries + 1))
        head -c "$try" -- "$tmpdir/raw" > "$tmpdir/cut"
        if ! command -v gzip >/dev/null 2>&1; then
            count=$try; payload="$tmpdir/cut"; break
        fi
        gzip -n -c -6 < "$tmpdir/cut" > "$tmpdir/gz" || die "gzip failed"
        gsize=$(fsize "$tmpdir/gz")
        if [ "$try" -le "$max" ]; then
            count=$try
            if [ "$gsize" -lt "$try" ]; then payload="$tmpdir/gz"; enc="gzip+base64"
            else payload="$tmpdir/cut"; fi
            break
        fi
        if [ "$gsize" -le "$max" ]; then
            count=$try; payload="$tmpdir/gz"; enc="gzip+base64"; break
        fi
        next=$((try * max * 7 / (gsize * 8)))
        if [ "$tries" -ge 4 ] || [ "$next" -le "$max" ]; then next=$max; fi
        [ "$next" -lt "$try" ] || next=$((try / 2))
        [ "$next" -ge 1 ] || next=1
        try=$next
    done
fi

printf '@runctl manifest=1 match=0 manifest_sha256=%s files=%s size=%s offset=%s count=%s exit_code= enc=%s\n' \
    "$sha" "$files" "$size" "$offset" "$count" "$enc"
printf '@runctl-data\n'
if [ "$count" -gt 0 ]; then
    base64 < "$payload" | tr -d '\n'
    printf '\n'
fi
exit 0
