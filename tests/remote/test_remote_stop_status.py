"""stop.sh, status.sh, checkpoints.sh, runs.sh against real trainings."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from datetime import UTC, datetime
from urllib.parse import quote

from runctl_jupyter.remote import command_for, parse_fields
from runctl_jupyter.remote.replies import StatusReply

LONG = ["--sleep", "0.2", "--epochs", "500"]


def _epochs_logged(inst, run_id):
    return re.findall(r"^epoch (\d+)/", inst.log(run_id), re.M)


def _checkpoint_lines(inst, stdout):
    lines = inst.line_fields(stdout)
    cks = [f for f in lines if "checkpoint" in f]
    assert {k: v for k, v in lines[-1].items() if k != "hashed"} == {"count": str(len(cks)), "total": str(len(cks))}
    return cks


def test_stop_checkpoints_and_lists_them(inst):
    r = inst.run("launch", inst.project, "s1", "train.py", *LONG)
    assert r.returncode == 0
    inst.wait_for(lambda: len(_epochs_logged(inst, "s1")) >= 2, 20, what="two epochs")
    out = inst.run("status", inst.project).stdout
    st = inst.fields(out)
    assert st["state"] == "running" and st["run_id"] == "s1" and st["lock_run_id"] == "s1"
    assert st["last_checkpoint"].startswith("checkpoint_epoch_")
    running = StatusReply.parse(out)
    assert (running.state, running.exit_code, running.lock_state, running.lock_run_id) == ("running", None, "running", "s1")
    assert running.pid > 0 and running.lock_pid > 0 and running.ended is None

    r = inst.run("stop", inst.project, "20")
    assert r.returncode == 0, r.stderr
    head = inst.line_fields(r.stdout)[0]
    assert head["stopped"] == "1" and head["run_id"] == "s1" and head["exit_code"] == "0"
    assert float(head["waited"]) < 20 and "still_running" not in head
    log = inst.log("s1")
    m = re.search(r"^received SIGTERM: saved (checkpoint_epoch_(\d+)\.json)$", log, re.M)
    assert m, log
    assert int(m.group(2)) == int(_epochs_logged(inst, "s1")[-1])
    assert log.rstrip("\n").splitlines()[-1] == "[runctl] exit code 0"
    assert not inst.lock.exists()

    # once stop returns every process of the run is gone: the listing is final
    cks = {f["checkpoint"]: f for f in _checkpoint_lines(inst, inst.run("checkpoints", inst.project).stdout)}
    saved = inst.checkpoints() / m.group(1)
    assert m.group(1) in cks
    assert cks[m.group(1)]["md5"] == hashlib.md5(saved.read_bytes()).hexdigest()
    assert cks[m.group(1)]["size"] == str(saved.stat().st_size)
    assert cks[m.group(1)]["mtime"] == str(int(saved.stat().st_mtime))

    out = inst.run("status", inst.project).stdout
    st = inst.fields(out)
    assert st["state"] == "exited" and st["exit_code"] == "0" and st["last_checkpoint"] == m.group(1)
    assert st["started"] <= st["ended"] and "lock_pid" not in st
    assert st["stopped"] == "1"  # ended by the stop's SIGTERM, whatever its exit code
    ended = StatusReply.parse(out)
    assert (ended.shown_state, ended.exit_code, ended.lock_state, ended.lock_pid) == ("stopped", 0, "", 0)
    assert ended.started is not None and ended.ended is not None and ended.started <= ended.ended

    # resume continues at the next epoch
    r = inst.run(
        "launch",
        inst.project,
        "s2",
        "train.py",
        "--sleep",
        "0",
        "--epochs",
        str(int(m.group(2)) + 2),
        "--resume",
        "auto",
    )
    assert inst.wait_done("s2") == 0
    log2 = inst.log("s2")
    assert f"resuming from {m.group(1)} (epoch {m.group(2)})" in log2
    assert _epochs_logged(inst, "s2")[0] == str(int(m.group(2)) + 1)
    assert "stopped" not in inst.fields(inst.run("status", inst.project, "s2").stdout)  # it ran to its end


def test_stop_when_nothing_runs(inst):
    r = inst.run("stop", inst.project, "0")
    assert r.returncode == 0
    assert inst.line_fields(r.stdout) == [{"stopped": "0"}]


def test_a_training_that_ignores_sigterm_is_killed_when_the_wait_runs_out(inst):
    (inst.code / "stubborn.py").write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    r = inst.run("launch", inst.project, "k1", "stubborn.py")
    assert r.returncode == 0
    pid = inst.fields(r.stdout)["pid"]
    inst.wait_for(lambda: "ready" in inst.log("k1"), 10, what="ready")
    r = inst.run("stop", inst.project, "1")
    head = inst.line_fields(r.stdout)[0]
    # nothing of the run is left to write a checkpoint after the listing
    assert head["killed"] == "1" and "still_running" not in head and head["exit_code"] == "137"
    assert 1.0 <= float(head["waited"]) < 5 and head["pid"] == pid
    assert not inst.lock.exists()
    assert "[runctl] killed (SIGKILL) by stop after a 1s wait" in inst.log("k1")
    st = inst.fields(inst.run("status", inst.project, "k1").stdout)
    assert st["state"] == "exited" and st["exit_code"] == "137"


def test_failed_run_and_runs_listing(inst):
    r = inst.run(
        "launch", inst.project, "f1", "train.py", "--sleep", "0", "--epochs", "5", "--fail-at-epoch", "3"
    )
    assert r.returncode == 0
    assert inst.wait_done("f1") == 3
    assert "[runctl] exit code 3" in inst.log("f1")
    out = inst.run("status", inst.project).stdout
    st = inst.fields(out)
    assert (
        st["state"] == "exited"
        and st["exit_code"] == "3"
        and st["last_checkpoint"] == "checkpoint_epoch_2.json"
    )
    reply = StatusReply.parse(out)
    assert (reply.state, reply.shown_state, reply.exit_code, reply.lost) == ("exited", "exited", 3, False)
    assert reply.last_checkpoint == "checkpoint_epoch_2.json" and reply.log_size > 0
    r = inst.run(
        "launch", inst.project, "f2", "train.py", "--sleep", "0", "--epochs", "1", "--", "a b", "é=%"
    )
    assert inst.wait_done("f2") == 0
    r = inst.run("runs", inst.project)
    assert r.returncode == 0
    lines = inst.line_fields(r.stdout)
    assert [x.get("run") for x in lines] == ["f2", "f1", None] and lines[-1] == {"count": "2", "total": "2"}
    assert lines[1]["exit_code"] == "3" and lines[0]["exit_code"] == "0"
    assert lines[1]["script"] == "train.py"
    assert json.loads(lines[0]["args_json"]) == ["--sleep", "0", "--epochs", "1", "--", "a b", "é=%"]
    assert all(x["state"] == "exited" for x in lines[:2])
    # the raw line is %-encoded: one token per key
    raw = [x for x in r.stdout.splitlines() if x.startswith("@runctl run=f2 ")][0]
    assert (
        "args_json=" + quote(json.dumps(["--sleep", "0", "--epochs", "1", "--", "a b", "é=%"]), safe="")
        in raw
    )
    # status of an explicit run id, and of one that does not exist
    assert inst.fields(inst.run("status", inst.project, "f1").stdout)["exit_code"] == "3"
    assert inst.fields(inst.run("status", inst.project, "zzz").stdout)["state"] == "none"


def test_status_and_runs_of_an_empty_project(inst):
    f = inst.fields(inst.run("status", "empty").stdout)
    assert f["state"] == "none" and f["run_id"] == ""
    assert inst.line_fields(inst.run("runs", "empty").stdout) == [{"count": "0", "total": "0"}]
    assert inst.run("status", "../x").returncode == 2


def test_lost_run(inst):
    """A run whose process vanished without an exit code (instance rebooted)."""
    run = inst.run_dir("lost")
    run.mkdir(parents=True)
    (run / "meta.json").write_text("{}")
    (run / "pid").write_text("999999999 1\n")
    (run / "started_at").write_text("1700000000\n")
    out = inst.run("status", inst.project).stdout
    f = inst.fields(out)
    assert f["run_id"] == "lost" and f["state"] == "exited" and f["lost"] == "1"
    assert f["started"] == "2023-11-14T22:13:20Z"
    # as Python reads it: lost, with no exit code (not 0, not "")
    reply = StatusReply.parse(out)
    assert (reply.run_id, reply.state, reply.lost, reply.exit_code) == ("lost", "exited", True, None)
    assert reply.started == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert reply.log == str(run / "log")  # absolute: SSM runs each command in a folder of its own


def test_checkpoint_names_are_encoded_and_partial_files_skipped(inst):
    ck = inst.checkpoints()
    (ck / "sub dir").mkdir(parents=True)
    (ck / "sub dir" / "a=b%é.pt").write_bytes(b"x" * 10)
    (ck / ".checkpoint_epoch_9.json.tmp.123").write_bytes(b"partial")
    (ck / "model.bin").write_bytes(b"")
    cks = _checkpoint_lines(inst, inst.run("checkpoints", inst.project).stdout)
    assert [c["checkpoint"] for c in cks] == ["model.bin", "sub dir/a=b%é.pt"]
    assert {c["project"] for c in cks} == {inst.project}
    assert cks[0]["md5"] == hashlib.md5(b"").hexdigest() and cks[1]["size"] == "10"
    out = inst.run("checkpoints", inst.project).stdout
    assert "checkpoint=sub%20dir%2Fa%3Db%25%C3%A9.pt " in out


def test_hostile_root_path_end_to_end_through_command_for(make_inst):
    """A RUNCTL_ROOT with spaces, quotes and $: every script through command_for + /bin/sh."""
    inst = make_inst("it's a $HOME `x` dir")

    def sh(name, *args):
        return inst.via_sh(command_for(name, list(args), {"RUNCTL_ROOT": str(inst.root),
                                                          "RUNCTL_PYTHON": sys.executable}))

    r = sh("launch", inst.project, "q1", "train.py", "--sleep", "0.2", "--epochs", "300")
    assert r.returncode == 0, r.stderr
    f = parse_fields(r.stdout)
    assert f["log"] == str(inst.run_dir("q1") / "log")
    inst.wait_for(lambda: "epoch 1/" in inst.log("q1"), 20, what="first epoch")
    st = parse_fields(sh("status", inst.project).stdout)
    assert st["state"] == "running" and st["pid"] == f["pid"]
    r = sh("stop", inst.project, "20")
    assert parse_fields(r.stdout.splitlines()[0])["exit_code"] == "0"
    r = sh("runs", inst.project)
    assert parse_fields(r.stdout)["run"] == "q1"
    r = sh("checkpoints", inst.project)
    assert r.returncode == 0 and "checkpoint=checkpoint_epoch_" in r.stdout
    assert int(parse_fields(r.stdout)["count"]) == int(parse_fields(r.stdout)["total"]) >= 1


def test_runs_are_listed_newest_first_in_pages_that_fit_ssm(inst):
    """151 runs used to come oldest first in one answer SSM cut at 24,000 characters: the newest runs,
    the ones a user wants, were the ones missing."""
    runs = inst.project_dir() / "runs"
    for i in range(151):
        run = runs / f"r{i:04d}"
        run.mkdir(parents=True)
        (run / "meta.json").write_text(json.dumps({"script": "train.py", "args": ["--epochs", str(i)]}))
        (run / "exit_code").write_text("0\n")
        os.utime(run / "meta.json", (1_700_000_000 + i, 1_700_000_000 + i))
    seen, start, pages = [], "0", 0
    while start is not None:
        out = inst.run("runs", "demo", start).stdout
        assert len(out) < 24_000
        fields = inst.line_fields(out)
        page = fields[-1]
        assert int(page["count"]) == len(fields) - 1 and page["total"] == "151"
        seen += [f["run"] for f in fields[:-1]]
        start, pages = page.get("next"), pages + 1
    assert seen == [f"r{i:04d}" for i in range(150, -1, -1)] and pages > 1
