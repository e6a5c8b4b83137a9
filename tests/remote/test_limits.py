"""The numbers Python and the scripts share are written once (remote/limits.py) and limits.sh is its
generated copy: a hand edit of either side fails here, and the scripts really read them."""

from __future__ import annotations

import subprocess

from runctl_jupyter import logs, remote
from runctl_jupyter.remote import limits


def test_limits_sh_is_generated_from_limits_py():
    assert limits.SHELL_FILE.read_text(encoding="utf-8") == limits.shell_text(), \
        "run `python -m runctl_jupyter.remote.limits` to regenerate limits.sh"


def test_the_scripts_and_the_reader_use_the_same_chunk_size(tmp_path):
    log = tmp_path / "log"
    log.write_bytes(b"x" * (limits.MAX_CHUNK_BYTES * 3))
    out = subprocess.run(["bash", remote.script_path("tail"), str(log), "0", str(10**9), "base64"],
                         capture_output=True, text=True, check=True).stdout
    assert logs.decode_chunk(out).count == limits.MAX_CHUNK_BYTES == logs.MAX_CHUNK_BYTES


def test_limits_sh_travels_with_the_scripts():
    assert "limits" in remote.SCRIPT_NAMES
