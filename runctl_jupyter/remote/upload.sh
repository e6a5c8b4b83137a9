#!/usr/bin/env bash
# upload.sh PROJECT [RELPATH URL]...
# Upload checkpoint files (relative to ROOT/runctl/PROJECT/checkpoints) to presigned PUT URLs with
# curl. URLs are secrets: they are never printed. Reports one line per file:
#   @runctl uploaded=<relpath %-enc> size=<bytes> md5=<hex>      or
#   @runctl failed=<relpath %-enc> reason=<%-enc>
# and `@runctl upload_ok=N upload_failed=M`. Exit 0 when every file went up, 1 otherwise.
set -u
ROOT="${RUNCTL_ROOT:-$HOME}"
project="${1:?project}"
shift
dir="$ROOT/runctl/$project/checkpoints"

enc() {  # %-encode everything but [A-Za-z0-9._~/-]
  local s="$1" out="" c i
  local LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~/-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

ok=0
failed=0
while [ "$#" -ge 2 ]; do
  rel="$1"
  url="$2"
  shift 2
  # only a path component that is exactly `..` leaves the folder: `model..pt` is a fine name
  case "/$rel/" in
    //* | */../* | */./*) echo "@runctl failed=$(enc "$rel") reason=unsafe%20path"; failed=$((failed + 1)); continue ;;
  esac
  file="$dir/$rel"
  if [ ! -f "$file" ]; then
    echo "@runctl failed=$(enc "$rel") reason=missing"
    failed=$((failed + 1))
    continue
  fi
  if curl -fsS --retry 3 --retry-delay 1 -X PUT -T "$file" -o /dev/null "$url" 2>/dev/null; then
    size=$(wc -c <"$file" | tr -d ' ')
    md5=$(md5sum "$file" | cut -d' ' -f1)
    echo "@runctl uploaded=$(enc "$rel") size=$size md5=$md5"
    ok=$((ok + 1))
  else
    echo "@runctl failed=$(enc "$rel") reason=curl%20error"
    failed=$((failed + 1))
  fi
done
echo "@runctl upload_ok=$ok upload_failed=$failed"
[ "$failed" -eq 0 ]
