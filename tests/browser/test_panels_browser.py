"""The panels in a real JupyterLab, driven by headless Debian Chromium through Playwright.

A notebook starts the sandbox, creates an instance, trains a short run (checkpoints on the
instance), and shows ``%runctl panel`` and ``%runctl panel train $iid``. The test then uses the
panels as a person would: Start a run in the training panel (log lines, progress), Terminate in the
resources panel (the guard's message and the Force terminate button), Stop → Confirm (the state
changes). Screenshots go to build/screenshots/. Everything is bounded; JupyterLab and the sandbox
are stopped in finalizers. Never downloads a browser: /usr/bin/chromium must be there (`make test`
installs Debian's).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_helpers import CHROMIUM, CHROMIUM_ARGS, get_json, wait
from lab_helpers import Lab as JupyterLab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "training" / "train_with_checkpoints.py"
SCREENSHOTS = REPO / "build" / "screenshots"
NOTEBOOK = "panels.ipynb"


def _notebook(root: Path, sandbox_dir: Path, config_file: Path, script: Path) -> Path:
    import nbformat

    cells = [
        "import os\n"
        f"os.environ['RUNCTL_SANDBOX_DIR'] = {str(sandbox_dir)!r}\n"
        f"os.environ['RUNCTL_CONFIG_FILE'] = {str(config_file)!r}",
        "%load_ext runctl_jupyter",
        "%runctl sandbox start --fresh",
        "iid = %runctl aws create t3.micro --wait\niid",
        f"%runctl aws train $iid {script} --wait -- --epochs 3 --sleep 0",
        "%runctl panel",
        "%runctl panel train $iid",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / NOTEBOOK
    nbformat.write(nb, str(path))
    return path


class Lab(JupyterLab):
    """JupyterLab serving a fresh project folder that holds the panels notebook, with its own sandbox."""

    def __init__(self, base: Path) -> None:
        self.sandbox_dir = base / "sandbox"
        self.config_file = base / "no-user-config.toml"
        super().__init__(base, base / "nbroot",  # the notebook's folder = the synced project
                         env={"RUNCTL_SANDBOX_DIR": str(self.sandbox_dir),
                              "RUNCTL_CONFIG_FILE": str(self.config_file)})

    def start(self) -> None:
        self.root.mkdir()
        (self.root / "pyproject.toml").write_text('[project]\nname = "nbroot"\nversion = "0"\n')
        self.script = self.root / "train_with_checkpoints.py"
        shutil.copy(TRAIN_SCRIPT, self.script)
        _notebook(self.root, self.sandbox_dir, self.config_file, self.script)
        super().start()

    def kernel_ready(self) -> bool:
        kernels = get_json(f"{self.url}/api/kernels")
        return any(k.get("execution_state") == "idle" and k.get("connections", 0) >= 1 for k in kernels)


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    assert CHROMIUM.exists(), ("Debian chromium is missing: run `bash scripts/ensure-debian-packages.sh chromium "
                               "chromium fonts-dejavu-core` (never a download); `make test` does")
    lab = Lab(tmp_path)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        _stop_sandbox(lab.sandbox_dir)


def _stop_sandbox(folder: Path) -> None:
    from runctl_jupyter.sandbox import control

    if folder.exists():
        control.stop(folder)


def _shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _run_all_cells(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    item = page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first
    item.wait_for(state="visible", timeout=10_000)
    item.click()


def _outputs_text(page: Any) -> str:
    return "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())


def test_panels_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(30_000)
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}", wait_until="domcontentloaded", timeout=60_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            wait(lab.kernel_ready, 60, "the kernel to be idle with a connection")
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=30_000)

            _run_all_cells(page)
            training = page.locator(".runctl-training-panel")
            resources = page.locator(".runctl-resources-panel")
            try:
                training.wait_for(state="visible", timeout=150_000)
                resources.wait_for(state="visible", timeout=10_000)
            except Exception:
                _shot(page, "panels-failed-run-all")
                raise AssertionError("the panels did not appear. Notebook outputs:\n" + _outputs_text(page)
                                     + "\n--- JupyterLab log:\n" + lab.log_tail()) from None
            outputs = _outputs_text(page)
            assert "Traceback" not in outputs, outputs
            assert "epoch 3/3" in outputs            # the --wait training streamed into its cell

            # The resources panel lists the instance (first refresh runs in the background).
            expect(resources.locator(".runctl-table")).to_contain_text("t3.micro", timeout=60_000)
            expect(resources.locator(".runctl-status")).to_contain_text("1 running", timeout=30_000)
            iid = resources.locator(".runctl-instance select").input_value().split(" ")[0]
            assert iid.startswith("i-"), iid
            _shot(page, "panels-loaded")

            # Training panel: start a short run, watch its log and progress.
            training.locator(".runctl-script input").fill(str(lab.script))
            training.locator(".runctl-args input").fill("--epochs 3 --sleep 0")
            training.locator(".runctl-train-start").click()
            expect(training.locator(".runctl-train-state")).to_contain_text("succeeded", timeout=90_000)
            expect(training.locator(".runctl-log")).to_contain_text("epoch 1/", timeout=10_000)
            expect(training.locator(".runctl-progress-label")).to_have_text("epoch 3/3", timeout=10_000)
            expect(training.locator(".runctl-cost")).to_contain_text("cost so far", timeout=10_000)
            bar = training.locator(".runctl-progress .progress-bar")
            assert "100%" in (bar.get_attribute("style") or ""), bar.get_attribute("style")
            _shot(page, "panels-training")

            # Terminate: confirmation first, then the checkpoint guard refuses and offers force.
            resources.locator(".runctl-terminate").click()
            expect(resources.locator(".runctl-confirm-box")).to_be_visible()
            expect(resources.locator(".runctl-confirm-box")).to_contain_text(iid)
            resources.locator(".runctl-confirm").click()
            expect(resources.locator(".runctl-message")).to_contain_text("Termination blocked", timeout=60_000)
            expect(resources.locator(".runctl-force-terminate")).to_be_visible(timeout=10_000)
            expect(resources.locator(".runctl-message")).to_contain_text(f"%runctl aws stop {iid}")
            _shot(page, "panels-terminate-guard")

            # Stop: nothing until Confirm; then the state changes in the refreshed table.
            resources.locator(".runctl-stop").click()
            expect(resources.locator(".runctl-confirm-box")).to_be_visible()
            expect(resources.locator(".runctl-table")).to_contain_text("running")
            resources.locator(".runctl-confirm").click()
            expect(resources.locator(".runctl-table")).to_contain_text(_stopping_or_stopped(), timeout=90_000)
            expect(resources.locator(".runctl-force-terminate")).to_be_hidden()
            _shot(page, "panels-stopped")
        finally:
            browser.close()
    assert time.monotonic() - started < 180


def _stopping_or_stopped() -> Any:
    import re

    return re.compile(r"stopp(ing|ed)")
