"""The instance claim (ROOT/runctl/lock): one training at a time, stale locks cleaned."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

LONG = ["--sleep", "0.2", "--epochs", "500"]


def _write_lock(inst, run_id, pid=None, start=None, project=None):
    inst.lock.mkdir(parents=True)
    (inst.lock / "owner").write_text(f"{run_id}\n{project or inst.project}\n")
    if pid is not None:
        (inst.lock / "pid").write_text(f"{pid} {start}\n")


def _snapshot(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_twenty_concurrent_launches_start_exactly_one(inst):
    inst.runctl.mkdir(parents=True, exist_ok=True)
    barrier = threading.Barrier(20)
    results = [None] * 20

    def go(i):
        barrier.wait()
        results[i] = inst.run("launch", inst.project, f"c{i}", "train.py", *LONG)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fields = [inst.fields(r.stdout) for r in results]
    started = [f for f in fields if f.get("started") == "1"]
    refused = [(r, f) for r, f in zip(results, fields, strict=True) if f.get("refused") == "running"]
    assert len(started) == 1, [r.stdout + r.stderr for r in results]
    assert len(refused) == 19
    assert all(r.returncode == 3 for r, _ in refused)
    winner = started[0]
    assert {f["pid"] for _, f in refused} == {winner["pid"]}
    assert {f["run_id"] for _, f in refused} == {winner["run_id"]}
    assert {f["project"] for _, f in refused} == {inst.project}
    # the losers changed nothing: one run directory, the lock is the winner's
    assert [p.name for p in (inst.project_dir() / "runs").iterdir()] == [winner["run_id"]]
    assert (inst.lock / "owner").read_text().splitlines()[0] == winner["run_id"]
    assert (inst.lock / "pid").read_text().split()[0] == winner["wrapper_pid"]
    stop = inst.run("stop", inst.project, "20")
    assert inst.fields(stop.stdout)["stopped"] == "1"
    assert not inst.lock.exists()


def test_running_training_refuses_and_changes_nothing(inst):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _write_lock(inst, "other", sleeper.pid, inst.proc_starttime(sleeper.pid), project="proj2")
        before = _snapshot(inst.root)
        r = inst.run("launch", inst.project, "new", "train.py")
        assert r.returncode == 3
        assert r.stdout == f"@runctl refused=running pid={sleeper.pid} run_id=other project=proj2\n"
        assert _snapshot(inst.root) == before
        assert not (inst.project_dir() / "runs").exists()
        assert not inst.checkpoints().exists()
        st = inst.fields(inst.run("status", inst.project).stdout)
        assert st["lock_pid"] == str(sleeper.pid) and st["lock_run_id"] == "other"
        assert "stale_cleaned" not in st
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_of_a_dead_process_is_cleaned(inst):
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_lock(inst, "old", dead.pid, "12345")
    r = inst.run("launch", inst.project, "fresh", "train.py", "--sleep", "0", "--epochs", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started=1" in r.stdout
    assert inst.wait_done("fresh") == 0
    assert not list(inst.runctl.glob(".lock.*.*"))  # the renamed-aside copy is gone too


def test_reused_pid_is_not_our_training(inst):
    """The lock's PID now belongs to an unrelated live process (different start time)."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        wrong = int(inst.proc_starttime(sleeper.pid)) - 1
        _write_lock(inst, "old", sleeper.pid, wrong)
        r = inst.run("launch", inst.project, "fresh", "train.py", "--sleep", "0", "--epochs", "1")
        assert r.returncode == 0 and "started=1" in r.stdout, r.stdout + r.stderr
        assert inst.wait_done("fresh") == 0
        assert sleeper.poll() is None  # the unrelated process was left alone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_status_cleans_a_stale_lock(inst):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _write_lock(inst, "old", sleeper.pid, "1")
        r = inst.run("status", inst.project)
        assert r.returncode == 0
        f = inst.fields(r.stdout)
        assert f["stale_cleaned"] == "1" and f["state"] == "none" and "lock_pid" not in f
        assert not inst.lock.exists()
        r = inst.run("status", inst.project)
        assert "stale_cleaned" not in inst.fields(r.stdout)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_of_a_launcher_still_starting(inst):
    """A lock without a pid: young = someone is starting (refuse), old = stale (take over)."""
    _write_lock(inst, "starting")
    r = inst.run("launch", inst.project, "x", "train.py", env={"RUNCTL_LOCK_WAIT": "0"})
    assert r.returncode == 3
    assert inst.fields(r.stdout) == {
        "refused": "running",
        "pid": "0",
        "run_id": "starting",
        "project": inst.project,
    }
    old = time.time() - 120
    os.utime(inst.lock, (old, old))
    r = inst.run("launch", inst.project, "x", "train.py", "--sleep", "0", "--epochs", "1")
    assert r.returncode == 0 and "started=1" in r.stdout, r.stdout + r.stderr
    assert inst.wait_done("x") == 0


def test_starting_lock_gets_its_pid_while_we_wait(inst):
    _write_lock(inst, "slow")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:

        def later():
            time.sleep(0.5)
            (inst.lock / "pid").write_text(f"{sleeper.pid} {inst.proc_starttime(sleeper.pid)}\n")

        t = threading.Thread(target=later)
        t.start()
        r = inst.run("launch", inst.project, "x", "train.py", env={"RUNCTL_LOCK_WAIT": "5"})
        t.join()
        assert r.returncode == 3 and inst.fields(r.stdout)["pid"] == str(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("owner", ["someone-else", None])
def test_wrapper_only_releases_its_own_lock(inst, owner):
    """If the lock was taken over meanwhile, the finishing run must not delete it."""
    r = inst.run("launch", inst.project, "mine", "train.py", "--sleep", "1", "--epochs", "1")
    assert r.returncode == 0
    # simulate a takeover while the training runs
    (inst.lock / "owner").write_text(f"{owner}\n{inst.project}\n" if owner else "")
    inst.wait_for((inst.run_dir("mine") / "exit_code").exists, 20, what="exit code")
    time.sleep(0.3)
    assert inst.lock.exists()
    for p in inst.lock.iterdir():
        p.unlink()
    inst.lock.rmdir()
