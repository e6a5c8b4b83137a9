"""guard.list_checkpoints: a listing that may miss files is doubt, never a shorter 'complete' one."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import unquote

import pytest

from runctl_jupyter import guard
from runctl_jupyter.models import RemoteResult

LINE = "@runctl project=p checkpoint=c{i}.pt size=1 md5=00 mtime=1\n"


def _listing(monkeypatch: pytest.MonkeyPatch, pages: list[tuple[str, str]]) -> guard.Listing:
    answers = iter(pages)

    def run(_ctx, iid, script, args, _env):
        status, stdout = next(answers)
        return RemoteResult(instance_id=iid, command_id="c", status=status, exit_code=0, stdout=stdout, stderr="")

    monkeypatch.setattr(guard.ssm, "run", run)
    monkeypatch.setattr(guard.ssm, "remote_root_env", lambda _ctx: {})
    return guard.list_checkpoints(SimpleNamespace(), "i-0123456789abcdef0", None)


def _page(first: int, n: int, total: int, nxt: int | None = None) -> str:
    body = "".join(LINE.format(i=i) for i in range(first, first + n))
    return body + f"@runctl count={n} total={total}" + (f" next={nxt}" if nxt is not None else "") + "\n"


def test_pages_that_add_up_are_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = _listing(monkeypatch, [("Success", _page(0, 2, 3, 2)), ("Success", _page(2, 1, 3))])
    assert listing.complete and [ck.relpath for ck in listing.checkpoints] == ["c0.pt", "c1.pt", "c2.pt"]


@pytest.mark.parametrize("pages, why", [
    # SSM cut the output at 24,000 characters: the count line never arrived
    ([("Success", "".join(LINE.format(i=i) for i in range(5)))], "without its count"),
    ([("Failed", _page(0, 1, 1))], "ended Failed"),
    # lines lost in the middle of a page
    ([("Success", _page(0, 3, 3).replace(LINE.format(i=1), ""))], "was cut"),
    # files appeared or vanished between pages
    ([("Success", _page(0, 2, 4, 2)), ("Success", _page(2, 1, 3))], "changed while it was read"),
])
def test_a_listing_that_may_miss_files_is_doubt(monkeypatch: pytest.MonkeyPatch, pages, why: str) -> None:
    listing = _listing(monkeypatch, pages)
    assert not listing.complete and why in listing.doubt


def test_a_stop_with_500_checkpoints_sends_every_upload_in_commands_under_64_kb(monkeypatch) -> None:
    """Presigned URLs with an SSO session token are ~1.3 KB each: 500 of them in one SendCommand
    would be ~650 KB, which AWS refuses (and so does the sandbox)."""
    from runctl_jupyter import remote
    from runctl_jupyter.aws import s3, ssm

    token = "T" * 1024
    monkeypatch.setattr(s3, "presign_put", lambda _ctx, bucket, key, _md5: f"https://{bucket}.s3.us-east-1.amazonaws.com/"
                        f"{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Security-Token={token}&X-Amz-Signature={'a' * 64}")
    monkeypatch.setattr(guard, "verify_copies", lambda *_a: None)
    monkeypatch.setattr(ssm, "remote_root_env", lambda _ctx: {"RUNCTL_ROOT": "/home/ec2-user"})
    sizes: list[int] = []
    sent: list[str] = []

    def run(_ctx, iid, script, args, env, stdin=None):
        assert script == "upload" and args == ["proj"] and token not in " ".join(args)  # URLs never in argv
        sizes.append(ssm.command_bytes(remote.command_for(script, args, env, stdin=stdin)))
        sent.extend(unquote(line.split()[1]) for line in stdin.splitlines())
        return RemoteResult(instance_id=iid, command_id="c", status="Success", exit_code=0, stdout="", stderr="")

    monkeypatch.setattr(ssm, "run", run)
    checkpoints = [guard.Checkpoint(f"run-7/checkpoint_epoch_{i:04d}.pt", 1, "0" * 32, 1) for i in range(500)]
    guard.upload_checkpoints(SimpleNamespace(), "i-0123456789abcdef0", "proj", "r1", checkpoints, "bucket",
                             lambda _line: None)
    assert sent == [ck.relpath for ck in checkpoints]
    assert max(sizes) <= ssm.MAX_COMMAND_BYTES and len(sizes) <= 20  # each batch nearly full
