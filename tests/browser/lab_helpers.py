"""A JupyterLab of its own for a browser test: its own config, data (no notebook is trusted there),
runtime, settings and workspace folders, on a free loopback port, stopped with its process group.
Driven by Debian's /usr/bin/chromium through Playwright (never a browser download)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SHOTS = REPO / "build" / "browser"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only
        return json.loads(resp.read().decode())


def wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Lab:
    """``jupyter lab`` serving ``root`` (as a new user has it: nothing trusted, default settings)."""

    def __init__(self, base: Path, root: Path, env: dict[str, str] | None = None) -> None:
        self.base, self.root = base, root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyterlab.log"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        settings = self.base / "lab-settings"
        for rel, value in {
            "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                 "checkForUpdates": False},
        }.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {k: v for k, v in os.environ.items()
               if k not in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                            "AWS_ENDPOINT_URL")}
        env.update({
            "JUPYTER_CONFIG_DIR": str(self.base / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(self.base / "jupyter-data"),  # its own notary: no notebook is trusted
            "JUPYTER_RUNTIME_DIR": str(self.base / "jupyter-runtime"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        })
        cmd = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
               "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
               f"--ServerApp.root_dir={self.root}"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: self.proc is not None and self.proc.poll() is None and get_json(f"{self.url}/api/status"),
             90, "JupyterLab to start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def contents(self, path: str) -> Any:
        return get_json(f"{self.url}/api/contents/{path}?content=1")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def open_notebook(browser: Any, lab: Lab, path: str, width: int = 1366, height: int = 900) -> Any:
    """A fresh page with ``path`` open (the workspace reset: only this document), its kernel idle."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(30_000)
    page.goto(f"{lab.url}/lab/tree/{path}?reset", wait_until="domcontentloaded", timeout=90_000)
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=90_000)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)
    return page


def shot(page: Any, name: str, element: Any = None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    if element is not None:
        element.scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    return path


def menu(page: Any, top: str, item: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    entry = page.locator(".lm-Menu-itemLabel", has_text=item).first
    entry.wait_for(state="visible", timeout=10_000)
    entry.click()


MATHS = "mjx-container, .MathJax, .MathJax_Display, .MathJax_Preview, .MathJax_SVG, .katex"

# Every row of every runctl cost table: whether it warns, and each cell's computed background colour.
TABLE_ROWS_JS = """(root) => Array.from(root.querySelectorAll('table.runctl-resources')).flatMap(table => {
    const heads = Array.from(table.querySelectorAll('thead th')).map(th => th.textContent.trim());
    const w = heads.indexOf('warnings'), id = heads.indexOf('instance_id');
    return Array.from(table.querySelectorAll('tbody tr')).map(tr => {
        const cells = Array.from(tr.querySelectorAll('td'));
        return {id: cells[id].textContent.trim(), warned: cells[w].textContent.trim() !== '',
                backgrounds: cells.map(td => getComputedStyle(td).backgroundColor),
                idLines: cells[id].getClientRects().length, idWrap: getComputedStyle(cells[id]).whiteSpace};
    });
})"""

TRANSPARENT = "rgba(0, 0, 0, 0)"
AMBER_OR_RED = {"rgb(255, 243, 205)", "rgb(255, 217, 102)", "rgb(248, 215, 218)", "rgb(241, 149, 159)"}
