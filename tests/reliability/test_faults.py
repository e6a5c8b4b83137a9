"""Injected faults: seeded throttling on 30 % of calls, and dropped (500) calls while a log streams.

With the default retry settings (retry_mode adaptive, max_attempts 12) every command still succeeds,
and a followed log is neither short of nor longer than the file on the instance's disk.
"""

from __future__ import annotations

import pytest
from rel_helpers import import_benchmarks, record, run_cli

from runctl_jupyter import api
from runctl_jupyter.sandbox import control


def _ok(*args: str, cwd=None):
    r = run_cli("--sandbox", *args, cwd=cwd)
    assert r.returncode == 0, f"runctl {' '.join(args)} → {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def _throttled_lifecycle(sandbox, script, seed: int) -> dict:
    control.set_faults(sandbox, throttle=0.3, seed=seed)
    created = _ok("aws", "create", "t3.micro", "--wait", "--project", "relproj")
    iid = created.stdout.strip().splitlines()[-1]
    assert iid.startswith("i-")
    assert "running" in _ok("aws", "status", iid).stdout
    trained = _ok("aws", "train", iid, str(script), "--wait", "--", "--epochs", "2", "--sleep", "0")
    assert "epoch 2/2" in trained.stdout
    assert "epoch 2/2" in _ok("aws", "monitor", iid).stdout
    assert iid in _ok("resources", "list").stdout
    _ok("aws", "stop", iid, "--wait")
    _ok("aws", "terminate", iid)  # stop uploaded every checkpoint: the guard lets it through
    state = control.faults(sandbox)
    control.set_faults(sandbox, throttle=0.0, reset=True)
    assert api.status(api.context(), iid).state in ("shutting-down", "terminated")
    return state


def test_thirty_percent_throttling_every_command_succeeds(faults_off, script):
    state = _throttled_lifecycle(faults_off, script, seed=20261105)
    assert state["counters"]["throttle"] >= 10, state  # the faults really happened


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(1, 11))
def test_thirty_percent_throttling_soak(faults_off, script, seed):
    _throttled_lifecycle(faults_off, script, seed=seed)


def _stream_with_drops(sandbox, seed: int, size: int, tmp_path) -> None:
    bench_logs = import_benchmarks()
    spew = bench_logs.make_log_project(tmp_path)
    ctx = api.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="logproj").instance_id
    try:
        control.set_faults(sandbox, drop=0.2, seed=seed)
        m = bench_logs.stream(ctx, iid, spew, size, sandbox.dir)
        state = control.faults(sandbox)
        control.set_faults(sandbox, drop=0.0, reset=True)
    finally:
        control.set_faults(sandbox, drop=0.0, reset=True)
        api.terminate(ctx, iid, force=True)
    record("dropped-calls stream (tail)", m["followed"][-4000:])
    assert state["counters"]["drop"] >= 5, state
    assert m["result"].exit_code == 0
    assert (m["lost"], m["dup"]) == (0, 0)
    assert m["followed"] == m["on_disk"]


def test_dropped_calls_while_streaming_lose_and_repeat_nothing(faults_off, tmp_path):
    _stream_with_drops(faults_off, seed=7, size=2_000_000, tmp_path=tmp_path)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(1, 6))
def test_dropped_calls_while_streaming_soak(faults_off, tmp_path, seed):
    _stream_with_drops(faults_off, seed=seed, size=20_000_000, tmp_path=tmp_path)
