#!/usr/bin/env bash
# make aws-smoke: the quickstart on YOUR AWS account — create a t3.micro, train the example script,
# list its checkpoints, stop (uploads them), terminate, and show what it cost. Opt-in: never part of
# `make test` or CI, and it refuses to start without RUNCTL_SMOKE_ACCOUNT=yes. Whatever it created is
# terminated on any exit (failure, Ctrl-C) and it says so.
#
#   AWS_PROFILE=me RUNCTL_BUCKET=my-bucket RUNCTL_SMOKE_ACCOUNT=yes make aws-smoke
#
# Needs: credentials for an account with the README's IAM policy (docs/iam-policy.json), a bucket you
# own, and the runctl-ssm-instance instance profile (README: "Using a real AWS account").
# Costs about a cent (t3.micro for a few minutes, a few KB in S3).
# `scripts/aws-smoke.sh --sandbox` runs the same steps in the embedded sandbox (what the tests run).
set -euo pipefail

RUNCTL=(runctl)
TYPE="${RUNCTL_SMOKE_TYPE:-t3.micro}"
PROFILE_ARGS=()
if [ "${1:-}" = --sandbox ]; then
  RUNCTL=(runctl --sandbox)
  runctl sandbox start >&2
else
  if [ "${RUNCTL_SMOKE_ACCOUNT:-}" != yes ]; then
    printf 'runctl aws-smoke: this launches a real %s in your AWS account (about a cent).\n' "$TYPE" >&2
    printf 'To resolve:\n  1. Run it on purpose: RUNCTL_SMOKE_ACCOUNT=yes RUNCTL_BUCKET=YOUR-BUCKET make aws-smoke\n' >&2
    printf '  2. Or run the same steps in the sandbox: scripts/aws-smoke.sh --sandbox\n' >&2
    exit 2
  fi
  [ -n "${RUNCTL_BUCKET:-}" ] || { printf 'runctl aws-smoke: set RUNCTL_BUCKET to a bucket you own\n' >&2; exit 2; }
  if [ -n "${RUNCTL_SMOKE_PROFILE:-runctl-ssm-instance}" ]; then
    PROFILE_ARGS=(--iam-instance-profile "${RUNCTL_SMOKE_PROFILE:-runctl-ssm-instance}")
  fi
fi
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
IID=""

cleanup() {
  local rc=$?
  if [ -n "$IID" ]; then
    printf 'aws-smoke: cleaning up %s…\n' "$IID" >&2
    if ! "${RUNCTL[@]}" aws terminate "$IID" --force --wait >&2; then
      printf 'aws-smoke: COULD NOT TERMINATE %s: terminate it in the EC2 console now (it bills).\n' "$IID" >&2
      rc=4
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\naws-smoke: %s\n' "$*" >&2; }

step "create a $TYPE (project runctl-smoke)"
created="$("${RUNCTL[@]}" aws create "$TYPE" --wait --project runctl-smoke "${PROFILE_ARGS[@]}")"
IID="$(grep -o 'i-[0-9a-f]\{8,17\}' <<<"$created" | head -n 1)"
[ -n "$IID" ] || { printf 'aws-smoke: create printed no instance ID: %s\n' "$created" >&2; exit 4; }

step "train the example script on $IID (2 epochs, a checkpoint each)"
"${RUNCTL[@]}" aws train "$IID" "$here/training/train_with_checkpoints.py" --project runctl-smoke \
  --project-root "$here/training" --wait -- --epochs "${RUNCTL_SMOKE_EPOCHS:-2}" --sleep 1 --checkpoint-interval 1

step "its checkpoints"
"${RUNCTL[@]}" aws checkpoints "$IID" --project runctl-smoke

step "what it costs so far"
"${RUNCTL[@]}" resources list --platform aws

step "stop (uploads every checkpoint, leaves the evidence terminate trusts)"
"${RUNCTL[@]}" aws stop "$IID" --wait

step "terminate (the guard checks the copies in S3 again)"
"${RUNCTL[@]}" aws terminate "$IID" --wait
IID=""

step "passed: create, train, checkpoints, costs, stop, terminate"
