#!/usr/bin/env bash
# Install Debian packages the tests need when their command is missing (from Debian's archive only,
# never a browser or library download from elsewhere).
# Usage: ensure-debian-packages.sh COMMAND PACKAGE...   e.g. ensure-debian-packages.sh faketime faketime
set -eu
command_name=$1
shift
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$command_name is missing and this is not root: sudo apt-get install $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
command -v "$command_name"
