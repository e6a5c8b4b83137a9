"""Shared pieces of the benchmarks: the Metric row, a sandbox session, generated projects, timers.

Every API-call figure is counted through botocore's ``before-call`` event (``Context.calls``), never
estimated. Every benchmark talks to an embedded sandbox in a temporary folder — never to AWS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SCRIPT = REPO / "training" / "train_with_checkpoints.py"


@dataclass
class Metric:
    """One row of the table: ``value`` compared with ``goal`` (``op`` is "<=", ">=" or "==")."""

    name: str
    value: float | None
    unit: str = ""
    goal: float | None = None
    op: str = "<="
    anchor: str = "—"
    note: str = ""
    group: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.value is None:
            return None
        if self.op == "<=":
            return self.value <= self.goal
        if self.op == ">=":
            return self.value >= self.goal
        return self.value == self.goal

    def value_text(self) -> str:
        return _fmt(self.value, self.unit)

    def goal_text(self) -> str:
        if self.goal is None:
            return "—"
        op = {"<=": "≤", ">=": "≥", "==": "="}[self.op]
        return f"{op} {_fmt(self.goal, self.unit)}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["met"] = self.met
        return data


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = f"{int(value):,}"
    return f"{text} {unit}".strip()


@dataclass
class Bench:
    """What every benchmark receives: the sandbox it may use and a scratch folder."""

    sandbox_dir: Path
    scratch: Path
    info: Any  # runctl_jupyter.sandbox.control.SandboxInfo
    extra: dict[str, Any] = field(default_factory=dict)

    def context(self):
        from runctl_jupyter import api

        return api.context()


@contextmanager
def aws_ssm_latency(info: Any) -> Iterator[None]:
    """Inside the block SSM answers as slowly as on AWS (``control.AWS_SSM_LATENCY``: a command starts
    0.7 s after SendCommand, its invocation is unknown for 0.3 s); the sandbox's delays are put back after."""
    from runctl_jupyter.sandbox import control

    before = control.set_delays(info)
    control.set_delays(info, **control.AWS_SSM_LATENCY)
    try:
        yield
    finally:
        control.set_delays(info, **{k: before[k] for k in control.AWS_SSM_LATENCY})


def median_time(fn: Callable[[], Any], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def make_project(folder: Path, n_files: int = 1000, *, name: str = "benchproj") -> Path:
    """A project folder: pyproject.toml, ``n_files`` small source files and a copy of the example script."""
    root = folder / name
    if root.exists():
        shutil.rmtree(root)
    (root / "train").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    shutil.copy(EXAMPLE_SCRIPT, root / "train" / "train.py")
    per_dir = 100
    for i in range(n_files):
        sub = root / "src" / f"pkg{i // per_dir:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"module_{i:04d}.py").write_text(
            f'"""Generated module {i}."""\n\nVALUE = {i}\n\n\ndef f{i}(x):\n    return x * {i} + {i % 7}\n')
    return root


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def isolate_environment(sandbox_dir: Path) -> None:
    """Point runctl at a temporary sandbox folder and a temporary (absent) user config file."""
    os.environ["RUNCTL_SANDBOX_DIR"] = str(sandbox_dir)
    os.environ["RUNCTL_CONFIG_FILE"] = str(sandbox_dir.parent / "no-user-config.toml")
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    for key in list(os.environ):
        if key.startswith("RUNCTL_") and key not in ("RUNCTL_SANDBOX_DIR", "RUNCTL_CONFIG_FILE"):
            del os.environ[key]
