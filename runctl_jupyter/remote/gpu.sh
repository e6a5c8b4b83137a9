#!/usr/bin/env bash
# gpu.sh: what the instance's NVIDIA GPUs are doing, through nvidia-smi (sourced by status.sh and
# launch.sh, after common.sh; never run on its own). An image without the NVIDIA driver has no
# nvidia-smi (a GPU type on a plain Amazon Linux image, or a CPU type): said as a field, never an error.
# shellcheck disable=SC2034 # GPU_* are results for the scripts that source this file

# the fields runctl reads (runctl_jupyter/gpus.py QUERY_FIELDS: the same list, in the same order)
GPU_FIELDS="index,name,uuid,utilization.gpu,utilization.memory,memory.used,memory.total,temperature.gpu,power.draw"
GPU_SMI_TIMEOUT=10 # seconds: a GPU whose driver hangs must not hang the status read

gpu_smi() {
  # gpu_smi ARGS…: nvidia-smi ARGS…, cut short after GPU_SMI_TIMEOUT seconds where `timeout` exists
  if command -v timeout >/dev/null 2>&1; then
    timeout "$GPU_SMI_TIMEOUT" nvidia-smi "$@"
  else
    nvidia-smi "$@"
  fi
}

gpu_report() {
  # one line per GPU, "@runctl-gpu " + nvidia-smi's own CSV line (--format=csv,noheader,nounits), then
  #   @runctl nvidia_smi=ok gpus=N | nvidia_smi=missing | nvidia_smi=failed gpu_error=<first line, %-enc>
  local out line n=0
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    printf '@runctl nvidia_smi=missing\n'
    return 0
  fi
  if ! out="$(gpu_smi "--query-gpu=$GPU_FIELDS" --format=csv,noheader,nounits 2>&1)"; then
    printf '@runctl nvidia_smi=failed gpu_error=%s\n' "$(pct "$(head -n 1 <<<"$out")")"
    return 0
  fi
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    printf '@runctl-gpu %s\n' "$line"
    n=$((n + 1))
  done <<<"$out"
  printf '@runctl nvidia_smi=ok gpus=%s\n' "$n"
}

gpu_count() {
  # gpu_count: sets GPU_COUNT (0 without nvidia-smi or when it fails)
  local out line
  GPU_COUNT=0
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  out="$(gpu_smi --query-gpu=index --format=csv,noheader 2>/dev/null)" || return 0
  while IFS= read -r line; do
    if is_uint "${line// /}"; then GPU_COUNT=$((GPU_COUNT + 1)); fi
  done <<<"$out"
}
