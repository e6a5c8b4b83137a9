"""Fixtures for the panel tests: fake API calls (no frontend, no AWS) and one sandbox per session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_env import make_project

from runctl_jupyter.widgets import _base


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
def train_project(tmp_path_factory) -> Path:
    """A tiny project folder holding only the example script (so a code sync sends one file)."""
    folder = tmp_path_factory.mktemp("panelproj")
    make_project(folder, "panelproj")
    return folder
