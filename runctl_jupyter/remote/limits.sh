# shellcheck shell=bash
# Generated from runctl_jupyter/remote/limits.py (python -m runctl_jupyter.remote.limits): do not edit.
# shellcheck disable=SC2034  # read by the scripts that source this file
RUNCTL_MAX_CHUNK_BYTES=17700
RUNCTL_TAIL_WINDOW_FACTOR=16
RUNCTL_MAX_LOG_PUT_BYTES=4000000000
