#!/usr/bin/env bash
# upload.sh PROJECT  < one line per PUT:
#   put  RELPATH MD5 URL                                   a whole file (≤ 5 GB), signed with its MD5
#   part RELPATH N OFFSET LENGTH SIZE MTIME URL            part N of a multipart upload (a file > 5 GB)
# Uploads checkpoint files (RELPATH %-encoded, relative to ROOT/runctl/PROJECT/checkpoints) to presigned
# URLs with curl. A `put` sends `Content-MD5` and `x-amz-meta-runctl-md5` (both signed into the URL: S3
# refuses a body whose MD5 differs, and keeps the MD5 with the object for later verification). A `part`
# is refused here when the file's size or mtime differs from the listing the URLs were made for, and is
# sent with its own Content-MD5. URLs are secrets: they come on stdin (never in an argv `ps` shows),
# reach curl on its stdin (-K -), and are never printed. Reports one line per PUT:
#   @runctl uploaded=<relpath %-enc> size=<bytes> md5=<hex>
#   @runctl part=<relpath %-enc> n=N etag=<%-enc>
#   @runctl failed=<relpath %-enc> reason=<%-enc> [n=N]
# and `@runctl upload_ok=N upload_failed=M`. Exit 0 when every PUT succeeded, 1 otherwise.
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 1 ] || die 2 "usage: upload.sh PROJECT < lines 'put RELPATH MD5 URL' | 'part RELPATH N OFFSET LENGTH SIZE MTIME URL'"
valid_name "$1" || die 2 "invalid project name: $(pct "$1")"
dir="$(checkpoint_dir "$1")"
work="$(mktemp -d)" || die 4 "no temporary folder for upload parts"
trap 'rm -rf -- "$work"' EXIT

ok=0
failed=0
fail() {
  # fail RELPATH REASON [N]
  echo "@runctl failed=$(pct "$1") reason=$(pct "$2")${3:+ n=$3}"
  failed=$((failed + 1))
}

hex_to_base64() {
  # 32 hex digits → the base64 of their 16 bytes (Content-MD5's form)
  local hex="$1" escaped=""
  while [ -n "$hex" ]; do
    escaped+="\\x${hex:0:2}"
    hex="${hex:2}"
  done
  printf '%b' "$escaped" | base64
}

put() {
  # put FILE URL HEADERS… → curl's stdout (the response headers), exit status
  local file="$1" url="$2"
  shift 2
  printf 'url = "%s"\n' "${url//\"/\\\"}" |
    curl -fsS --retry 3 --retry-delay 1 -X PUT -T "$file" -D - -o /dev/null "$@" -K - 2>/dev/null
}

is_hex_md5() { [[ "$1" =~ ^[0-9a-f]{32}$ ]]; }
is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

while read -r kind enc_rel a b c d e url; do
  [ -n "$kind" ] || continue
  rel="$(printf '%b' "${enc_rel//%/\\x}")"
  # only a path component that is exactly `..` leaves the folder: `model..pt` is a fine name
  case "/$rel/" in
    //* | */../* | */./*) fail "$rel" "unsafe path"; continue ;;
  esac
  file="$dir/$rel"
  if [ ! -f "$file" ]; then
    fail "$rel" missing
    continue
  fi
  case "$kind" in
    put)
      # put RELPATH MD5 URL: the URL is the third field; later fields are empty
      md5="$a" url="$b"
      if ! is_hex_md5 "$md5" || [ -z "$url" ] || [ -n "$c" ]; then fail "$rel" "malformed line"; continue; fi
      if put "$file" "$url" -H "Content-MD5: $(hex_to_base64 "$md5")" -H "x-amz-meta-runctl-md5: $md5" >/dev/null; then
        echo "@runctl uploaded=$(pct "$rel") size=$(stat -L -c %s -- "$file") md5=$md5"
        ok=$((ok + 1))
      else
        # S3 refuses a body whose MD5 is not the listed one (BadDigest): the file changed since
        fail "$rel" "curl error (or the file changed since it was listed)"
      fi
      ;;
    part)
      n="$a" offset="$b" length="$c" size="$d" mtime="$e"
      for v in "$n" "$offset" "$length" "$size" "$mtime"; do is_count "$v" || { fail "$rel" "malformed line"; continue 2; }; done
      [ -n "$url" ] || { fail "$rel" "malformed line" "$n"; continue; }
      if [ "$(stat -L -c '%s %Y' -- "$file")" != "$size $mtime" ]; then
        fail "$rel" "changed since it was listed" "$n"
        continue
      fi
      chunk="$work/part"
      # the byte range [offset, offset+length) of the file, then the same check: nothing moved meanwhile
      tail -c "+$((offset + 1))" -- "$file" | head -c "$length" >"$chunk"
      if [ "$(stat -c %s -- "$chunk")" != "$length" ] || [ "$(stat -L -c '%s %Y' -- "$file")" != "$size $mtime" ]; then
        fail "$rel" "changed while it was read" "$n"
        continue
      fi
      read -r part_md5 _ < <(md5sum <"$chunk")
      if headers="$(put "$chunk" "$url" -H "Content-MD5: $(hex_to_base64 "$part_md5")")"; then
        etag="$(printf '%s\n' "$headers" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' | tail -n 1)"
        if [ -n "$etag" ]; then
          echo "@runctl part=$(pct "$rel") n=$n etag=$(pct "$etag")"
          ok=$((ok + 1))
        else
          fail "$rel" "no ETag in S3's answer" "$n"
        fi
      else
        fail "$rel" "curl error" "$n"
      fi
      rm -f -- "$chunk"
      ;;
    *) fail "$rel" "unknown line kind" ;;
  esac
done
echo "@runctl upload_ok=$ok upload_failed=$failed"
[ "$failed" -eq 0 ]
