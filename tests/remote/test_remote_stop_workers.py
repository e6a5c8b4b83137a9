"""stop.sh with a training that has worker processes (PyTorch DataLoader, torchrun): SIGTERM goes to
the training's main process, never first to its group, and nothing of the run survives the stop."""

from __future__ import annotations

import shutil
from pathlib import Path

STANDIN = Path(__file__).resolve().parents[1] / "data" / "dataloader_standin.py"


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _launch_standin(inst, run_id: str, save_seconds: str) -> dict[str, str]:
    shutil.copy(STANDIN, inst.code / "standin.py")
    r = inst.run("launch", inst.project, run_id, "standin.py", "4", save_seconds)
    assert r.returncode == 0, r.stderr
    inst.wait_for(lambda: "workers ready" in inst.log(run_id), 20, what="the workers")
    return inst.fields(r.stdout)


def test_stop_lets_a_training_with_workers_save_then_ends_its_whole_group(inst):
    started = _launch_standin(inst, "w1", "0.5")
    wrapper = int(started["wrapper_pid"])
    assert len(_group_members(wrapper)) == 7  # wrapper, main, 4 workers, the prefetcher

    r = inst.run("stop", inst.project, "20")
    assert r.returncode == 0, r.stderr
    head = inst.line_fields(r.stdout)[0]
    # the training saved and exited 0: its workers were not killed under it
    assert head["stopped"] == "1" and head["exit_code"] == "0", inst.log("w1")
    assert head["pid"] == started["pid"] and "still_running" not in head and "group_survived" not in head
    assert "received SIGTERM: saved final.pt" in inst.log("w1")
    assert "killed by signal" not in inst.log("w1")
    listed = [f["checkpoint"] for f in inst.line_fields(inst.run("checkpoints", inst.project).stdout)
              if "checkpoint" in f]
    assert listed == ["final.pt"]
    # nothing of the run survives (the prefetcher that ignores SIGTERM was killed), the lock is free
    assert _group_members(wrapper) == []
    assert not inst.lock.exists()
    st = inst.fields(inst.run("status", inst.project).stdout)
    assert st["state"] == "exited" and st["exit_code"] == "0" and st["stopped"] == "1"


def test_nothing_is_written_after_the_listing_when_the_wait_runs_out(inst):
    """The training needs 1.5 s to save, the stop waits 1 s: when the wait runs out the whole run is
    ended before the listing, so no checkpoint can appear after it (and be lost with the instance)."""
    started = _launch_standin(inst, "w2", "1.5")
    r = inst.run("stop", inst.project, "1")
    head = inst.line_fields(r.stdout)[0]
    assert head["killed"] == "1" and "still_running" not in head and head["exit_code"] not in ("", "0")
    assert _group_members(int(started["wrapper_pid"])) == []
    listed = [f["checkpoint"] for f in inst.line_fields(inst.run("checkpoints", inst.project).stdout)
              if "checkpoint" in f]
    assert listed == [] and sorted(p.name for p in inst.checkpoints().iterdir()) in ([], [".final.pt.tmp"])


def test_kill_minus_9_of_the_wrapper_does_not_free_the_lock_while_the_training_runs(inst):
    import os
    import signal

    started = _launch_standin(inst, "w3", "0")
    os.kill(int(started["wrapper_pid"]), signal.SIGKILL)
    r = inst.run("launch", inst.project, "w4", "standin.py", "1", "0")
    assert r.returncode == 3 and inst.fields(r.stdout)["refused"] == "running", r.stdout + r.stderr
    assert inst.fields(r.stdout)["pid"] == started["pid"]
    stop = inst.run("stop", inst.project, "20")
    assert inst.line_fields(stop.stdout)[0]["stopped"] == "1"
    assert _group_members(int(started["wrapper_pid"])) == []
    assert not inst.lock.exists()


def test_a_long_listing_comes_in_counted_pages_that_add_up(inst):
    ck = inst.checkpoints()
    ck.mkdir(parents=True)
    names = sorted(f"epoch_{i:04d}_{'x' * 60}.pt" for i in range(300))
    for name in names:
        (ck / name).write_bytes(b"w")
    listed, start, pages = [], "0", 0
    while True:
        r = inst.run("checkpoints", inst.project, start, env={"RUNCTL_LIST_BUDGET": "4000"})
        lines = inst.line_fields(r.stdout)
        page = lines[-1]
        assert len(r.stdout) <= 4000 + 200 and int(page["count"]) == len(lines) - 1 and page["total"] == "300"
        listed += [f["checkpoint"] for f in lines[:-1]]
        pages += 1
        if "next" not in page:
            break
        start = page["next"]
    assert listed == names and pages > 5


def test_a_symlinked_checkpoint_folder_and_a_stale_temporary_file_are_listed(inst, tmp_path):
    import os
    import time

    bigger_disk = tmp_path / "data"
    bigger_disk.mkdir()
    (bigger_disk / "best.pt").write_bytes(b"weights")
    (bigger_disk / ".recent.pt.tmp.1").write_bytes(b"being written")  # an atomic write in progress
    stale = bigger_disk / ".crashed.pt.tmp.2"
    stale.write_bytes(b"all that is left")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    inst.checkpoints().parent.mkdir(parents=True, exist_ok=True)
    inst.checkpoints().symlink_to(bigger_disk)
    lines = inst.line_fields(inst.run("checkpoints", "--all").stdout)
    assert [f["checkpoint"] for f in lines[:-1]] == [".crashed.pt.tmp.2", "best.pt"]
    assert lines[-1] == {"count": "2", "total": "2", "hashed": str(len(b"weights") + len(b"all that is left"))}


def test_a_repeated_listing_hashes_nothing_until_a_file_changes(inst):
    """A 100 GB checkpoint folder must not be read again on every listing (and stay inside SSM's time)."""
    ck = inst.checkpoints()
    ck.mkdir(parents=True)
    for i in range(50):
        (ck / f"c{i:02d}.pt").write_bytes(b"w" * 1000)

    def listed():
        lines = inst.line_fields(inst.run("checkpoints", inst.project).stdout)
        return {f["checkpoint"]: f["md5"] for f in lines[:-1]}, int(lines[-1]["hashed"])

    first, hashed = listed()
    assert hashed == 50_000
    again, hashed = listed()
    assert (again, hashed) == (first, 0)
    (ck / "c07.pt").write_bytes(b"x" * 1000)  # same size, rewritten: hashed again, new MD5
    changed, hashed = listed()
    assert hashed == 1000 and changed["c07.pt"] != first["c07.pt"]
    assert {k: v for k, v in changed.items() if k != "c07.pt"} == {k: v for k, v in first.items() if k != "c07.pt"}
