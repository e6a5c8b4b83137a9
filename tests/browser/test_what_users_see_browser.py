"""What a person sees in JupyterLab (issue 16), in Debian's headless Chromium through Playwright.

1. Money is not maths: no MathJax element anywhere in the three stored guides (markdown, tables,
   captions) or in a live cost table and the panels; the `$` amounts are there as text.
2. The stored guides keep their colours when opened as a new user opens them (fresh copies, never
   trusted: JupyterLab drops their `<style>`): the computed background of every warned row's cells.
   And opening a guide does not mark it modified (no "Save changes?" on close).
3. The training panel opened on an instance whose run was started by `%runctl aws train` attaches to
   it (running, Stop, progress, log); its log box stays at the newest line while lines arrive, and
   where the reader scrolled to once they scrolled up.
4. The resources panel shows warnings and cost first (the rest behind "All columns"), IDs on one line,
   and after Stop it refreshes by itself until the instance has stopped (Refresh is never pressed).
5. A cell following a run in the background says it detached when the kernel restarts.

Screenshots go to build/browser/. JupyterLab and the sandbox are stopped in finalizers.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import (
    AMBER_OR_RED,
    CHROMIUM,
    CHROMIUM_ARGS,
    MATHS,
    REPO,
    TABLE_ROWS_JS,
    TRANSPARENT,
    Lab,
    menu,
    open_notebook,
    shot,
    wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(480)]

GUIDES = ("quickstart", "cost_analysis", "safety_tour")
LIVE = "live.ipynb"
WARNED_IN_GUIDE = {"quickstart": 0, "cost_analysis": 7, "safety_tour": 1}  # the rows the guides' text promises


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    assert CHROMIUM.exists(), ("Debian chromium is missing: run `bash scripts/ensure-debian-packages.sh chromium "
                               "chromium fonts-dejavu-core` (never a download); `make test` does")
    base = tmp_path_factory.mktemp("lab")
    root = base / "nbroot"
    (root / "guides").mkdir(parents=True)
    for name in GUIDES:  # fresh copies, as a new user downloads them: never opened, never trusted here
        shutil.copy(REPO / "notebooks" / f"{name}.ipynb", root / "guides" / f"{name}.ipynb")
    (root / "pyproject.toml").write_text('[project]\nname = "nbroot"\nversion = "0"\n')
    shutil.copy(REPO / "training" / "train_with_checkpoints.py", root / "train_with_checkpoints.py")
    _live_notebook(root, base / "sandbox", base / "no-user-config.toml")
    lab = Lab(base, root, env={"RUNCTL_SANDBOX_DIR": str(base / "sandbox"),
                               "RUNCTL_CONFIG_FILE": str(base / "no-user-config.toml")})
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        from runctl_jupyter.sandbox import control

        if (base / "sandbox").exists():
            control.stop(base / "sandbox")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _live_notebook(root: Path, sandbox: Path, config_file: Path) -> None:
    import nbformat

    cells = [
        f"import os\nos.environ['RUNCTL_SANDBOX_DIR'] = {str(sandbox)!r}\n"
        f"os.environ['RUNCTL_CONFIG_FILE'] = {str(config_file)!r}",
        "%load_ext runctl_jupyter",
        "%runctl sandbox start --fresh --freeze-clock 2026-11-23T09:00:00+00:00",
        "iid = %runctl aws create t3.micro --wait\nbig = %runctl aws create g5.12xlarge --wait\n"
        "%runctl sandbox age $big 30",
        "%runctl resources",
        # started by the magic, not the panel; it runs on while the cell returns
        "%runctl aws train $iid train_with_checkpoints.py -- --epochs 600 --sleep 0.12",
        "%runctl panel train $iid",
        "from runctl_jupyter.sandbox import control\n"
        "_ = control.set_delays(control.status(), stopping=6)  # EC2 takes a while to stop",
        "%runctl panel",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, str(root / LIVE))


def _no_maths(page: Any, where: str) -> None:
    found = page.locator(MATHS)
    assert found.count() == 0, f"{where}: MathJax typeset {found.count()} element(s): {found.first.inner_text()!r}"


def _rows(page: Any, root: str = ".jp-NotebookPanel:visible") -> list[dict[str, Any]]:
    return page.locator(root).first.evaluate(TABLE_ROWS_JS)


def _assert_highlighted(rows: list[dict[str, Any]], where: str) -> None:
    for row in rows:
        if row["warned"]:
            plain = [bg for bg in row["backgrounds"] if bg not in AMBER_OR_RED]
            assert not plain, f"{where}: warned row {row['id']} has cells without the highlight: {plain}"
        else:
            assert set(row["backgrounds"]) <= {TRANSPARENT}, f"{where}: row {row['id']} is coloured"
        assert row["idWrap"] == "nowrap" and row["idLines"] == 1, f"{where}: {row['id']} wraps"


def test_stored_guides_opened_untrusted(lab: Lab, browser: Any) -> None:
    """Items 1, 2 and 7: no maths, every warned row highlighted, and not modified by opening."""
    for name in GUIDES:
        path = f"guides/{name}.ipynb"
        model = lab.contents(path)
        code = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
        assert code and not any(c["metadata"].get("trusted") for c in code), f"{name} is trusted here"
        page = open_notebook(browser, lab, path)
        try:
            panel = page.locator(".jp-NotebookPanel:visible")
            time.sleep(3)  # the kernel has started: what JupyterLab rewrites on open, it has rewritten
            tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
            assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), f"{name}: modified by opening it"
            _no_maths(page, name)
            text = panel.inner_text()
            assert "$" in text, f"{name}: no dollar amount shown"
            rows = _rows(page)
            warned = [r for r in rows if r["warned"]]
            assert len(warned) == WARNED_IN_GUIDE[name], (name, [r["id"] for r in warned])
            _assert_highlighted(rows, name)
            if name == "cost_analysis":
                assert "more than $10 accrued, or more than $5/hr" in text  # markdown, typeset as text
            tables = panel.locator("table.runctl-resources")
            shot(page, f"guide-{name}", tables.last.locator("caption") if tables.count() else None)
        finally:
            page.close()


def test_live_table_and_panels(lab: Lab, browser: Any) -> None:
    """Items 1, 3, 4 and 5 in a live notebook against the sandbox."""
    from playwright.sync_api import expect

    page = open_notebook(browser, lab, LIVE, width=1366, height=1000)
    try:
        menu(page, "Run", "Run All Cells")
        training = page.locator(".runctl-training-panel")
        resources = page.locator(".runctl-resources-panel")
        try:
            resources.wait_for(state="visible", timeout=180_000)
        except Exception:
            shot(page, "live-failed-run-all")
            raise AssertionError("the panels did not appear. Outputs:\n"
                                 + "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
                                 + "\n--- JupyterLab log:\n" + lab.log_tail()) from None

        # 1. the live cost table: dollars as text, the old instance red; no maths anywhere on the page.
        live_table = page.locator(".jp-OutputArea-output table.runctl-resources").first
        expect(live_table.locator("caption")).to_contain_text("/hr · $")
        rows = _rows(page, ".jp-OutputArea-output:has(table.runctl-resources)")
        assert [r["warned"] for r in rows].count(True) == 1
        _assert_highlighted(rows, "live table")
        shot(page, "live-cost-table", live_table)

        # 3. the training panel attached to the run `%runctl aws train` started: running, Stop, log, progress.
        expect(training.locator(".runctl-train-state")).to_contain_text("running (run ", timeout=60_000)
        expect(training.locator(".runctl-message")).to_contain_text("was already running")
        expect(training.locator(".runctl-train-stop")).to_be_enabled()
        expect(training.locator(".runctl-train-start")).to_be_disabled()
        expect(training.locator(".runctl-progress-label")).to_contain_text("epoch ", timeout=30_000)
        log = training.locator(".runctl-log")
        _log_follows_unless_scrolled_up(page, log)
        shot(page, "live-training-panel-attached", training)

        # 4. the resources panel: warnings and cost first, IDs on one line, the rest behind a toggle.
        panel_table = resources.locator(".runctl-table")
        expect(panel_table).to_contain_text("g5.12xlarge", timeout=60_000)
        heads = panel_table.locator("thead th").all_inner_texts()
        assert heads[:8] == ["instance_id", "name", "instance_type", "gpu", "state", "warnings", "usd_per_hour",
                             "accrued_usd"], heads
        right = panel_table.locator("thead th", has_text="accrued_usd").evaluate(
            "th => th.getBoundingClientRect().right")
        assert right <= 1366, f"the cost column is off-screen at a laptop's width ({right}px)"
        _assert_highlighted(_rows(page, ".runctl-resources-panel"), "resources panel")
        resources.locator(".runctl-all-columns").click()
        expect(panel_table.locator("thead th", has_text="price_source")).to_have_count(1)
        shot(page, "live-resources-all-columns", resources)
        resources.locator(".runctl-all-columns").click()
        expect(panel_table.locator("thead th", has_text="price_source")).to_have_count(0)

        # …and after Stop it looks again by itself until the instance has stopped.
        big = next(r["id"] for r in _rows(page, ".runctl-resources-panel") if r["warned"])
        select = resources.locator(".runctl-instance select")
        labels = select.locator("option").all_inner_texts()
        select.select_option(index=next(i for i, label in enumerate(labels) if label.startswith(big)))
        resources.locator(".runctl-stop").click()
        resources.locator(".runctl-confirm").click()
        big_row = panel_table.locator("tbody tr", has_text=big)
        expect(big_row).to_contain_text(re.compile(r"stopping|pending"), timeout=90_000)
        shot(page, "live-resources-stopping", resources)
        expect(big_row).to_contain_text("stopped", timeout=90_000)
        expect(resources.locator(".runctl-status")).not_to_contain_text("settle", timeout=30_000)
        shot(page, "live-resources-stopped", resources)

        # 5. the cell following the run in the background: after a kernel restart it says it detached.
        follower = page.locator(".runctl-live").first
        expect(follower.locator(".runctl-live-state")).to_contain_text("running (shown here while this kernel runs")
        stale = follower.locator(".runctl-stale")
        assert stale.evaluate("e => e.getBoundingClientRect().height") == 0  # hidden while it is redrawn
        time.sleep(3)
        assert stale.evaluate("e => e.getBoundingClientRect().height") == 0
        menu(page, "Kernel", re.compile(r"^Restart Kernel…$"))
        page.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(stale).to_be_visible(timeout=60_000)
        expect(stale).to_contain_text("this view is detached (the run may go on)")
        shot(page, "live-after-kernel-restart", follower)
        _no_maths(page, "live notebook")
    finally:
        page.close()


LOG_GEOMETRY_JS = """box => {
    const r = box.getBoundingClientRect(), blocks = box.querySelectorAll('.runctl-log-text');
    const last = blocks[blocks.length - 1].getBoundingClientRect(), first = blocks[0].getBoundingClientRect();
    return {bottomGap: r.bottom - last.bottom, topGap: first.top - r.top, lines: box.innerText.split('\\n').length,
            scrollable: box.scrollHeight > box.clientHeight + 4};
}"""


def _log_follows_unless_scrolled_up(page: Any, log: Any) -> None:
    """The newest line stays in view as lines arrive; once the reader scrolled up, the view stays put."""
    wait(lambda: log.evaluate(LOG_GEOMETRY_JS)["scrollable"], 60, "the log to overflow its box")
    for _ in range(3):  # at the bottom while it grows
        before = log.evaluate(LOG_GEOMETRY_JS)["lines"]
        wait(lambda b=before: log.evaluate(LOG_GEOMETRY_JS)["lines"] > b, 30, "more log lines")
        assert 0 <= log.evaluate(LOG_GEOMETRY_JS)["bottomGap"] < 12, log.evaluate(LOG_GEOMETRY_JS)
    log.evaluate("box => { box.scrollTop = -box.scrollHeight; box.scrollTop = -box.scrollHeight; }")  # to the top
    top = log.evaluate(LOG_GEOMETRY_JS)["topGap"]
    assert 0 <= top < 12, top
    before = log.evaluate(LOG_GEOMETRY_JS)["lines"]
    wait(lambda: log.evaluate(LOG_GEOMETRY_JS)["lines"] > before + 3, 30, "more log lines")
    assert abs(log.evaluate(LOG_GEOMETRY_JS)["topGap"] - top) < 2, "the view moved while the reader was scrolled up"
    log.evaluate("box => { box.scrollTop = 0; }")  # back to the newest line: it follows again
    before = log.evaluate(LOG_GEOMETRY_JS)["lines"]
    wait(lambda: log.evaluate(LOG_GEOMETRY_JS)["lines"] > before, 30, "more log lines")
    assert 0 <= log.evaluate(LOG_GEOMETRY_JS)["bottomGap"] < 12
