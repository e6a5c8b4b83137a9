"""No credential or presigned URL appears in any output the reliability tests captured: every CLI
stdout/stderr, every followed log, and (recorded when each module's sandbox ends) every run's log
and meta.json on the instances' disks and the sandbox server's own log.

This module runs last (pytest orders files by name); run alone it has nothing to scan and skips.
"""

from __future__ import annotations

import re

import pytest
from rel_helpers import TRANSCRIPT

from runctl_jupyter.sandbox import control

FORBIDDEN = ["X-Amz-Signature", "X-Amz-Credential", "AWS_SECRET_ACCESS_KEY", "Signature=",
             "aws_secret_access_key", "AWSAccessKeyId="]
# The sandbox's test secret (control.env_for) — matched as a word: "testing" alone.
SECRET = re.compile(r"(?<![A-Za-z_])" + re.escape(control.env_for(control.SandboxInfo(
    dir=None, endpoint="", pid=0, port=0, started=""))["AWS_SECRET_ACCESS_KEY"]) + r"(?![A-Za-z_])")


def test_no_credential_or_presigned_url_in_any_output():
    if not TRANSCRIPT:
        pytest.skip("run the whole tests/reliability folder: nothing was captured")
    leaks = []
    for where, text in TRANSCRIPT:
        for needle in FORBIDDEN:
            if needle in text:
                i = text.index(needle)
                leaks.append(f"{where}: {needle!r} … {text[max(0, i - 80):i + 40]!r}")
        m = SECRET.search(text)
        if m:
            leaks.append(f"{where}: the test secret … {text[max(0, m.start() - 80):m.end() + 40]!r}")
    assert not leaks, "\n".join(leaks[:20])
    assert sum(len(t) for _, t in TRANSCRIPT) > 10_000  # the scan really looked at something
