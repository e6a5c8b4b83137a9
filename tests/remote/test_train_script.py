"""training/train_with_checkpoints.py: checkpoints, resume, SIGTERM, failures (no runctl involved)."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train_with_checkpoints.py"


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("train_with_checkpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path, *args, env=None):
    e = dict(os.environ)
    e.pop("RUNCTL_CHECKPOINT_DIR", None)
    e.pop("RUNCTL_RESUME_FROM", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--sleep", "0", *args],
        cwd=tmp_path,
        env=e,
        capture_output=True,
        text=True,
        timeout=60,
    )


def epochs(out):
    return [int(x) for x in re.findall(r"^epoch (\d+)/\d+ loss=\d+\.\d{6} acc=\d\.\d{4}$", out, re.M)]


def test_runs_on_python_38_grammar():
    ast.parse(SCRIPT.read_text(), feature_version=(3, 8))


def test_full_run_output_and_checkpoints(tmp_path):
    r = run(tmp_path, "--epochs", "4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "args: " + json.dumps(["--sleep", "0", "--epochs", "4"])
    assert epochs(r.stdout) == [1, 2, 3, 4]
    assert re.fullmatch(r"training complete: 4 epochs, final loss=\d+\.\d{6}", lines[-1])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [f"checkpoint_epoch_{e}.json" for e in (1, 2, 3, 4)]
    loss = [float(x) for x in re.findall(r"loss=(\d+\.\d+) ", r.stdout)]
    assert loss == sorted(loss, reverse=True)  # gradient descent actually descends
    acc = float(re.findall(r"acc=(\d\.\d+)", r.stdout)[-1])
    assert acc > 0.85


def test_checkpoint_dir_from_environment(tmp_path):
    r = run(tmp_path, "--epochs", "1", env={"RUNCTL_CHECKPOINT_DIR": str(tmp_path / "env-ck")})
    assert r.returncode == 0
    assert (tmp_path / "env-ck" / "checkpoint_epoch_1.json").exists()


def test_resume_starts_at_the_next_epoch_and_matches_an_uninterrupted_run(tmp_path, train):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert run(a, "--epochs", "6").returncode == 0
    assert run(b, "--epochs", "3").returncode == 0
    r = run(b, "--epochs", "6", "--resume", "auto")
    assert r.returncode == 0
    assert "resuming from checkpoint_epoch_3.json (epoch 3)" in r.stdout
    assert epochs(r.stdout) == [4, 5, 6]
    full = train.load_checkpoint(a / "checkpoints" / "checkpoint_epoch_6.json")
    resumed = train.load_checkpoint(b / "checkpoints" / "checkpoint_epoch_6.json")
    assert full["weights"] == resumed["weights"] and full["bias"] == resumed["bias"]
    # an explicit path (relative to the checkpoint dir works too)
    r = run(b, "--epochs", "5", "--resume", "checkpoint_epoch_4.json")
    assert "resuming from checkpoint_epoch_4.json (epoch 4)" in r.stdout and epochs(r.stdout) == [5]
    # from the environment (what launch.sh passes on as RUNCTL_RESUME_FROM)
    r = run(b, "--epochs", "6", env={"RUNCTL_RESUME_FROM": "auto"})
    assert epochs(r.stdout) == [] and "nothing to train" in r.stdout and r.returncode == 0


def test_resume_auto_without_checkpoints_starts_fresh(tmp_path):
    r = run(tmp_path, "--epochs", "1", "--resume", "auto")
    assert r.returncode == 0 and "starting from epoch 1" in r.stdout and epochs(r.stdout) == [1]


def test_invalid_newest_checkpoint_is_skipped(tmp_path, train):
    assert run(tmp_path, "--epochs", "3").returncode == 0
    ck = tmp_path / "checkpoints"
    (ck / "checkpoint_epoch_9.json").write_text("{not json")
    data = json.loads((ck / "checkpoint_epoch_3.json").read_text())
    data["weights"][0] += 1.0  # tampered: sha256 no longer matches
    (ck / "checkpoint_epoch_3.json").write_text(json.dumps(data))
    data["format"] = "something/2"
    (ck / "checkpoint_epoch_8.json").write_text(json.dumps(data))
    r = run(tmp_path, "--epochs", "4", "--resume", "auto")
    assert r.returncode == 0
    assert "resuming from checkpoint_epoch_2.json (epoch 2)" in r.stdout
    assert "Warning: skipping invalid checkpoint checkpoint_epoch_9.json: not valid JSON" in r.stderr
    assert "Warning: skipping invalid checkpoint checkpoint_epoch_8.json: unknown format" in r.stderr
    assert "Warning: skipping invalid checkpoint checkpoint_epoch_3.json: sha256 mismatch" in r.stderr
    assert epochs(r.stdout) == [3, 4]
    # an explicit invalid file is an error, not a silent fresh start
    r = run(tmp_path, "--epochs", "4", "--resume", str(ck / "checkpoint_epoch_9.json"))
    assert r.returncode == 2 and "cannot resume from" in r.stderr
    r = run(tmp_path, "--epochs", "4", "--resume", "missing.json")
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_save_is_atomic(tmp_path, train, monkeypatch):
    path = train.save_checkpoint(str(tmp_path), 1, [0.5] * 10, 0.1, 0.3, 0.9, 42)
    before = Path(path).read_bytes()
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(train.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))

    def boom(src, dst):
        assert Path(src).parent == Path(dst).parent  # temp file in the same directory
        assert Path(src).read_bytes().endswith(b"\n") and synced  # complete and synced first
        raise OSError("disk full")

    monkeypatch.setattr(train.os, "replace", boom)
    with pytest.raises(OSError):
        train.save_checkpoint(str(tmp_path), 1, [9.0] * 10, 9.0, 9.0, 0.1, 42)
    assert Path(path).read_bytes() == before  # the old checkpoint is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch_1.json"]  # no temp left
    monkeypatch.undo()
    data = train.load_checkpoint(path)
    assert data["epoch"] == 1 and data["format"] == "runctl-example-checkpoint/1"
    assert len(data["sha256"]) == 64


def test_interval_warning_and_schedule(tmp_path):
    r = run(tmp_path, "--epochs", "7", "--checkpoint-interval", "6")
    assert r.returncode == 0
    assert "Warning: checkpoint interval 6 > 5 epochs: up to 6 epochs of work can be lost" in r.stderr
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["checkpoint_epoch_6.json", "checkpoint_epoch_7.json"]
    r = run(tmp_path, "--epochs", "1", "--checkpoint-interval", "5", "--checkpoint-dir", "other")
    assert "Warning" not in r.stderr


def test_fail_at_epoch_exits_3(tmp_path):
    r = run(tmp_path, "--epochs", "5", "--fail-at-epoch", "3")
    assert r.returncode == 3 and epochs(r.stdout) == [1, 2]
    assert "simulated failure at epoch 3" in r.stderr


def test_sigterm_saves_the_last_completed_epoch(tmp_path, train):
    p = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--epochs", "1000", "--sleep", "0.3", "--checkpoint-interval", "50"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("epoch 2/"):
            break
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    last = epochs("".join(seen) + out)[-1]
    assert f"received SIGTERM: saved checkpoint_epoch_{last}.json" in out
    data = train.load_checkpoint(tmp_path / "checkpoints" / f"checkpoint_epoch_{last}.json")
    assert data["epoch"] == last


def test_sigterm_before_any_epoch(tmp_path):
    p = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--epochs", "10", "--sleep", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().startswith("args: ")
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert "received SIGTERM" in out or "training complete" in out  # fast machines may finish


def test_bad_flags(tmp_path):
    assert run(tmp_path, "--epochs", "0").returncode == 2
    assert run(tmp_path, "--checkpoint-interval", "0").returncode == 2
