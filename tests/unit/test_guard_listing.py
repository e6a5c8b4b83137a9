"""guard.list_checkpoints: a listing that may miss files is doubt, never a shorter 'complete' one."""

from __future__ import annotations

from types import SimpleNamespace

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
