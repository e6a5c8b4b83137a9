"""How a run is drawn while it goes (follow_view): the progress bar and the live display's words."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from runctl_jupyter import follow_view
from runctl_jupyter.training import TrainResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(follow_view.time, "monotonic", c)
    return c


class Handle:
    def __init__(self) -> None:
        self.shown: list[dict[str, str]] = []

    def update(self, bundle: dict[str, str], raw: bool = False) -> None:
        self.shown.append(bundle)


def epochs(first: int, last: int, total: int = 10) -> str:
    return "".join(f"epoch {i}/{total} loss=0.1\n" for i in range(first, last + 1))


def test_replayed_lines_move_the_bar_but_not_its_rate(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    """`monitor --follow` shows the last lines again: 5 epochs replayed at once are no 5 epochs/s."""
    progress = follow_view._Progress(notebook=False)
    progress.replay(epochs(1, 5))
    clock.now += 4
    progress.feed(epochs(6, 7))
    meter = progress.meter()
    assert "7/10" in meter and "2.00s/epoch" in meter  # 2 live epochs in 4 s, not 7 in 4 s
    progress.close("succeeded (exit code 0)")
    assert "7/10" in capsys.readouterr().err  # tqdm's own bar, on stderr in a shell


def test_the_cell_shows_where_the_run_ended_not_a_bar_at_zero(clock: Clock) -> None:
    progress = follow_view._Progress(notebook=False)
    progress.notebook, progress.handle = True, Handle()  # as in a kernel, with the display recorded
    clock.now += 2
    progress.feed(epochs(1, 3, total=3))
    progress.close("succeeded (exit code 0)")
    last = progress.handle.shown[-1]
    assert last["text/plain"].startswith("training: 100%|") and last["text/plain"].endswith("succeeded (exit code 0)")
    assert "3/3 [00:02, " in last["text/plain"] and "<" not in last["text/plain"]  # no time left once ended
    assert "<progress value='3' max='3'></progress>" in last["text/html"]
    assert "tex2jax_ignore mathjax_ignore" in last["text/html"]


def test_a_display_left_by_a_stopping_kernel_says_it_detached(clock: Clock) -> None:
    progress = follow_view._Progress(notebook=False)
    progress.notebook, progress.handle = True, Handle()
    progress.hint = "Re-attach with `%runctl aws monitor i-0123456789abcdef0 --follow`."
    follow_view._LIVE_VIEWS.add(progress)
    try:
        progress.feed(epochs(1, 2))
        follow_view._kernel_stopping()  # what atexit runs when the kernel restarts or shuts down
    finally:
        follow_view._LIVE_VIEWS.discard(progress)
    text = progress.handle.shown[-1]["text/plain"]
    assert "2/10" in text and "detached" in text
    assert "The kernel stopped; the run goes on. Re-attach with `%runctl aws monitor" in text


def _follower(**kw: Any) -> follow_view.BackgroundFollower:
    follower = follow_view.BackgroundFollower.__new__(follow_view.BackgroundFollower)
    follower.launch = SimpleNamespace(run_id="20261123T090000Z-abc123", instance_id="i-0123456789abcdef0")
    follower.lines, follower.partial, follower.max_lines = ["epoch 1/4"], "", 200
    follower.parser = follow_view.api.ProgressParser()
    follower.parser.feed("epoch 1/4\n")
    follower.reattach = kw.get("reattach", "`%runctl aws monitor i-0123456789abcdef0 --follow`")
    follower.result = None
    return follower


def test_the_live_display_says_its_outcome_once() -> None:
    follower = _follower()
    result = TrainResult("i-0123456789abcdef0", "p", "20261123T090000Z-abc123", "stopped", 0)
    html = follower._render(follow_view._state_words(result)).data
    assert "<b>run 20261123T090000Z-abc123 on i-0123456789abcdef0</b>: " in html
    assert "stopped (exit code 0)" in html and html.count("20261123T090000Z-abc123") == 1  # not "Run X on Y" again
    assert "tex2jax_ignore mathjax_ignore" in html
    running = follower._render(follower._running_status()).data
    assert "running (shown here while this kernel runs)" in running
    # Once nothing redraws it (the kernel is gone), a note appears: hidden by CSS only while it is fresh.
    assert "animation:runctl-stale 1ms step-end 20s forwards" in running
    assert "this view is detached (the run may go on). Follow it again with `%runctl aws monitor" in running
    assert "runctl-stale" not in html  # an ended run's display says how it ended, nothing else


def test_nbval_sees_the_display_as_first_drawn_and_the_notebook_stores_the_end(clock: Clock) -> None:
    """nbval ignores display updates: the first drawing and the last must read the same once sanitized."""
    import re
    from pathlib import Path

    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((Path(__file__).parents[1] / "nbval_sanitize.cfg").read_text())

    def sanitized(bundle: dict[str, str]) -> dict[str, str]:
        out = {}
        for mime, text in bundle.items():
            for regex, replace in patterns:
                text = re.sub(regex, replace, text)
            out[mime] = text
        return out

    progress = follow_view._Progress(notebook=False)
    first = progress._bundle()
    assert first["text/plain"] == "training: waiting for the first `epoch N/M` or tqdm line"
    progress.feed(epochs(1, 5, total=5))
    clock.now += 1.5
    assert sanitized(progress._bundle("succeeded (exit code 0)")) == sanitized(first)
    assert sanitized(follow_view._Progress(notebook=False)._bundle("failed (exit code 2)")) == sanitized(first)
