#!/usr/bin/env bash
# upload.sh PROJECT  < lines "RELPATH URL"
# Upload checkpoint files (RELPATH %-encoded, relative to ROOT/runctl/PROJECT/checkpoints) to presigned
# PUT URLs with curl. URLs are secrets: they come on stdin (never in an argv `ps` shows), reach curl on
# its stdin (-K -), and are never printed. Reports one line per file:
#   @runctl uploaded=<relpath %-enc> size=<bytes> md5=<hex>      or
#   @runctl failed=<relpath %-enc> reason=<%-enc>
# and `@runctl upload_ok=N upload_failed=M`. Exit 0 when every file went up, 1 otherwise.
set -u
# the helpers every runctl script shares, shipped beside it (command_for) or found next to it
# shellcheck source=common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97

[ "$#" -eq 1 ] || die 2 "usage: upload.sh PROJECT < lines 'RELPATH URL'"
valid_name "$1" || die 2 "invalid project name: $(pct "$1")"
dir="$(checkpoint_dir "$1")"

ok=0
failed=0
while read -r enc_rel url; do
  [ -n "$enc_rel" ] || continue
  rel="$(printf '%b' "${enc_rel//%/\\x}")"
  # only a path component that is exactly `..` leaves the folder: `model..pt` is a fine name
  case "/$rel/" in
    //* | */../* | */./*) echo "@runctl failed=$(pct "$rel") reason=unsafe%20path"; failed=$((failed + 1)); continue ;;
  esac
  file="$dir/$rel"
  if [ ! -f "$file" ]; then
    echo "@runctl failed=$(pct "$rel") reason=missing"
    failed=$((failed + 1))
    continue
  fi
  if printf 'url = "%s"\n' "${url//\"/\\\"}" |
    curl -fsS --retry 3 --retry-delay 1 -X PUT -T "$file" -o /dev/null -K - 2>/dev/null; then
    size=$(stat -L -c %s -- "$file")
    read -r md5 _ < <(md5sum <"$file")
    echo "@runctl uploaded=$(pct "$rel") size=$size md5=$md5"
    ok=$((ok + 1))
  else
    echo "@runctl failed=$(pct "$rel") reason=curl%20error"
    failed=$((failed + 1))
  fi
done
echo "@runctl upload_ok=$ok upload_failed=$failed"
[ "$failed" -eq 0 ]
