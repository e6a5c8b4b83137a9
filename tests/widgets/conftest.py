"""Fixtures for the panel tests: fake API calls (no frontend, no AWS) and one sandbox per session."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl_jupyter.widgets import _base

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "training" / "train_with_checkpoints.py"


@pytest.fixture(autouse=True)
def _close_panels() -> Iterator[None]:
    """Every panel a test made is closed afterwards, and its threads are gone."""
    yield
    with _base._REGISTRY_LOCK:
        panels = list(_base._REGISTRY.values())
    for panel in panels:
        panel.close()
    for thread in threading.enumerate():
        if thread.name.startswith(_base.THREAD_PREFIX):
            thread.join(timeout=10)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The embedded sandbox for the whole session (RUNCTL_SANDBOX_DIR / RUNCTL_CONFIG_FILE in temp)."""
    from runctl_jupyter import api

    folder = tmp_path_factory.mktemp("widgets-sandbox")
    saved = dict(os.environ)
    os.environ["RUNCTL_SANDBOX_DIR"] = str(folder)
    os.environ["RUNCTL_CONFIG_FILE"] = str(folder.parent / "widgets-no-user-config.toml")
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    try:
        status = api.sandbox_start(str(folder))
    except Exception:
        os.environ.clear()
        os.environ.update(saved)
        raise
    try:
        yield status
    finally:
        api.sandbox_stop(str(folder))
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture()
def ctx(sandbox):
    from runctl_jupyter import api

    return api.context()


@pytest.fixture(scope="session")
def train_project(tmp_path_factory) -> Path:
    """A tiny project folder holding only the example script (so a code sync sends one file)."""
    folder = tmp_path_factory.mktemp("panelproj")
    (folder / "pyproject.toml").write_text('[project]\nname = "panelproj"\nversion = "0"\n')
    shutil.copy(TRAIN_SCRIPT, folder / "train_with_checkpoints.py")
    return folder
