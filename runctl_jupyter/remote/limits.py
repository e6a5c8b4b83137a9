"""Numbers the Python side and the on-instance scripts must agree on, written once.

``limits.sh`` beside the scripts is generated from this module (``python -m runctl_jupyter.remote.limits``
rewrites it; tests/remote/test_limits.py fails while the two differ) and sourced by the scripts that
need them; it travels to instances with the scripts.
"""

from __future__ import annotations

from pathlib import Path

#: SSM keeps at most 24,000 characters of a command's stdout: one base64 chunk of this many raw bytes
#: (4 * ceil(17700 / 3) = 23,600 characters) plus its header line stays under it.
MAX_CHUNK_BYTES = 17_700
#: tail.sh: with gzip, a chunk's raw window grows up to this many times MAX_CHUNK_BYTES while it fits.
TAIL_WINDOW_FACTOR = 16
#: log_upload.sh: one presigned PUT (S3 refuses a single PUT over 5 GB).
MAX_LOG_PUT_BYTES = 4_000_000_000

SHELL_NAMES = {"RUNCTL_MAX_CHUNK_BYTES": MAX_CHUNK_BYTES, "RUNCTL_TAIL_WINDOW_FACTOR": TAIL_WINDOW_FACTOR,
               "RUNCTL_MAX_LOG_PUT_BYTES": MAX_LOG_PUT_BYTES}
SHELL_FILE = Path(__file__).with_name("limits.sh")


def shell_text() -> str:
    lines = ["# shellcheck shell=bash",
             "# Generated from runctl_jupyter/remote/limits.py (python -m runctl_jupyter.remote.limits): do not edit.",
             "# shellcheck disable=SC2034  # read by the scripts that source this file",
             *(f"{name}={value}" for name, value in SHELL_NAMES.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    SHELL_FILE.write_text(shell_text(), encoding="utf-8")
    print(f"wrote {SHELL_FILE}")
