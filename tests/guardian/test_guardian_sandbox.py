"""The guardian end to end in the sandbox: spot notice, autostop, budget caps, resume, no leftovers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sandbox_env import REPO

from runctl_jupyter import api, follow_view, guard, guardian, resources, training
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import GuardRefused
from runctl_jupyter.sandbox import control

SCRIPT = REPO / "training" / "train_with_checkpoints.py"
BUCKET = "runctl-sandbox"


def _disk(sandbox, iid: str) -> Path:
    return Path(sandbox.directory) / "instances" / iid / "runctl"


def _wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll every 0.2 s: the events waited for take seconds, and a status of an instance a guardian
    watches is an SSM round trip (no need to ask 20 times a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _instance_processes(sandbox, iid: str, running: bytes = b"") -> list[int]:
    """Live processes carrying the sandbox's marker RUNCTL_SANDBOX_INSTANCE=<iid> whose command line
    contains `running` (any program when empty). A process that exits while it is being read is
    not live: its /proc files vanish between reads, which is why all of them are read in one try."""
    want = f"RUNCTL_SANDBOX_INSTANCE={iid}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if want in env and running in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found.append(int(entry))
    return found


def _fe(lines: list[str]):
    return SimpleNamespace(echo=lines.append, notebook=False, prefix="runctl")


def _train_cmd(iid, *script_args, project="gtest", autostop=None, max_hours=None, max_cost=None, resume=None):
    return SimpleNamespace(instance_id=iid, script=str(SCRIPT), script_args=list(script_args), project=project,
                           sync_code=True, bucket=None, resume=resume, autostop=autostop, max_hours=max_hours,
                           max_cost=max_cost, wait=False, project_root=None, torchrun=False, nproc_per_node=None,
                           python=None)


def _record(sandbox, iid, project, run_id) -> dict:
    path = _disk(sandbox, iid) / project / "runs" / run_id / "guardian.json"
    return json.loads(path.read_text())


# --- spot ------------------------------------------------------------------------------------------

def test_spot_create_is_spot_and_priced_from_spot_history(ctx, spot_instance):
    inst = api.status(ctx, spot_instance)
    assert inst.lifecycle == "spot" and inst.one_time_spot
    df = resources.list_frame(ctx)
    row = df[df["instance_id"] == spot_instance].iloc[0]
    assert row["price_source"] == "spot-history"


def test_stop_of_one_time_spot_uploads_then_terminates(ctx, spot_instance, sandbox):
    training.start_training(ctx, spot_instance, SCRIPT, ["--epochs", "100", "--sleep", "0.2", "--seed", "771"],
                            project="gtest")  # stop works on the instance's project (its tag)
    ck = _disk(sandbox, spot_instance) / "gtest" / "checkpoints"
    _wait_until(lambda: len(list(ck.glob("checkpoint_epoch_*.json"))) >= 1, what="a checkpoint")
    lines: list[str] = []
    inst = api.stop(ctx, spot_instance, wait=True, echo=lines.append)
    text = "\n".join(lines)
    assert "Saved" in text and "one-time spot instance: AWS cannot stop it, only terminate it" in text
    assert inst.state == "terminated"
    assert s3.list_objects(ctx, BUCKET, "runctl/gtest/checkpoints/")


def test_spot_notice_puts_the_checkpoint_in_s3_before_the_instance_goes(ctx, spot_instance, sandbox):
    lines: list[str] = []
    launch = training.start_training(ctx, spot_instance, SCRIPT, ["--epochs", "200", "--sleep", "0.2"],
                                     project="gspot", echo=lines.append)
    assert any(line.startswith("Guardian: uploads with presigned URLs valid until") for line in lines), lines
    base = _disk(sandbox, spot_instance) / "gspot"
    _wait_until(lambda: len(list((base / "checkpoints").glob("checkpoint_epoch_*.json"))) >= 2, what="checkpoints")
    info = control.status(Path(sandbox.directory))
    t0 = time.monotonic()
    control.interrupt(info, spot_instance, notice_seconds=6, terminate_after_seconds=6)
    prefix = guard.checkpoint_prefix("gspot", launch.run_id)
    first = _wait_until(lambda: s3.list_objects(ctx, BUCKET, prefix), timeout=6, what="the checkpoint in S3")
    elapsed = time.monotonic() - t0
    rec = _wait_until(lambda: (r := _record(sandbox, spot_instance, "gspot", launch.run_id))["state"] == "acted"
                      and r, timeout=6, what="the guardian record")
    # Still before the reclaim: the instance and its disk are there to compare with.
    assert api.status(ctx, spot_instance).state == "running"
    rel = rec["checkpoint"]
    assert rec["action"] == "spot-notice" and rec["upload"] == "ok" and rel in first  # the newest went up first
    # AWS takes the disk: every checkpoint on it went up, not only the newest
    on_disk = {p.name: p.read_bytes() for p in (base / "checkpoints").glob("checkpoint_epoch_*.json")}
    objects = s3.list_objects(ctx, BUCKET, prefix)
    assert {name: s3.get_bytes(ctx, BUCKET, obj.key) for name, obj in objects.items()} == on_disk
    assert rec["uploaded"] == rec["upload_total"] == str(len(on_disk)) and rec["upload_failed"] == "0"
    log = (base / "runs" / launch.run_id / "log").read_text()
    assert f"[runctl guardian] spot interruption notice: all {len(on_disk)} checkpoints uploaded (" in log
    assert f"newest {rel})" in log
    assert f"received SIGTERM: saved {rel}" in log
    print(f"\nnotice → checkpoint in S3: {elapsed:.2f} s")
    _wait_until(lambda: api.status(ctx, spot_instance).state == "terminated", timeout=15, what="the reclaim")
    _wait_until(lambda: not _instance_processes(sandbox, spot_instance), timeout=5, what="no processes left")


# --- autostop --------------------------------------------------------------------------------------

def test_autostop_stops_an_idle_instance_and_leaves_no_guardian(ctx, instance, sandbox):
    lines: list[str] = []
    follow_view.train_command(ctx, _train_cmd(instance, "--epochs", "2", "--sleep", "0", autostop=3.0), _fe(lines))
    assert "runctl:guardian" in api.status(ctx, instance).tags
    assert api.status(ctx, instance).tags["runctl:guardian"] == "watching: autostop 3s"
    from runctl_jupyter import resources  # the cost table shows the guardian too (from tags, no SSM)

    table = resources.list_frame(ctx)
    assert "guardian watching: autostop 3s" in table.loc[table.instance_id == instance, "training"].item()
    _wait_until(lambda: api.status(ctx, instance).state == "stopped", timeout=20, what="autostop")
    assert not _instance_processes(sandbox, instance)
    run_id = api.status(ctx, instance).tags["runctl:run-id"]
    rec = _record(sandbox, instance, "gtest", run_id)
    ended = float((_disk(sandbox, instance) / "gtest" / "runs" / run_id / "ended_at").read_text())
    assert float(rec["detected_at"]) - ended >= 3.0  # not before its duration
    assert rec["action"] == "autostop" and rec["upload"] == "ok"
    assert rec["instance"] == "stop requested (presigned EC2 call)"
    assert s3.list_objects(ctx, BUCKET, guard.checkpoint_prefix("gtest", run_id))


def test_guardian_exits_when_the_training_ends_without_limits(ctx, spot_instance, sandbox):
    launch = training.start_training(ctx, spot_instance, SCRIPT, ["--epochs", "2", "--sleep", "0"], project="gdone")
    training.wait_for_exit(ctx, launch, timeout_s=30)
    _wait_until(lambda: _record(sandbox, spot_instance, "gdone", launch.run_id)["state"] == "done",
                timeout=10, what="the guardian to finish")
    _wait_until(lambda: not _instance_processes(sandbox, spot_instance, running=b"guardian.sh"),
                timeout=5, what="no guardian process")


# --- budget caps + resume ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def budget_run(sandbox):
    """A run capped by --max-hours 0.001 (3.6 s) on an on-demand instance."""
    ctx = api.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="gbudget").instance_id
    lines: list[str] = []
    follow_view.train_command(ctx, _train_cmd(iid, "--epochs", "500", "--sleep", "0.2", project="gbudget",
                                           max_hours=0.001), _fe(lines))
    _wait_until(lambda: api.status(ctx, iid).state == "stopped", timeout=25, what="the budget cap")
    run_id = api.status(ctx, iid).tags["runctl:run-id"]
    yield SimpleNamespace(iid=iid, run_id=run_id, lines=lines)
    api.terminate(ctx, iid, force=True)


def test_budget_cap_stops_the_run_then_the_instance(ctx, sandbox, budget_run):
    base = _disk(sandbox, budget_run.iid) / "gbudget"
    log = (base / "runs" / budget_run.run_id / "log").read_text()
    rec = _record(sandbox, budget_run.iid, "gbudget", budget_run.run_id)
    assert rec["action"] == "max-hours" and rec["training"] == "exited after SIGTERM" and rec["upload"] == "ok"
    assert "received SIGTERM: saved " + rec["checkpoint"] in log
    assert "[runctl guardian] budget cap: run time reached 3.600s (stopping the instance): " \
           f"{rec['checkpoint']} uploaded" in log
    assert (base / "runs" / budget_run.run_id / "exit_code").read_text().strip() == "0"
    assert not _instance_processes(sandbox, budget_run.iid)
    # status no longer claims a running training or a watching guardian on the stopped instance
    summary = api.status(ctx, budget_run.iid).summary()
    assert "training: ended: instance stopped" in summary
    assert "guardian: acted: max-hours" in summary or "guardian: ended: instance stopped" in summary
    assert "running" not in summary.split("training:", 1)[1] and "watching" not in summary
    assert "guardian: acting" not in summary


def test_resume_auto_on_a_fresh_instance_continues_at_the_next_epoch(ctx, sandbox, budget_run, instance):
    rec = _record(sandbox, budget_run.iid, "gbudget", budget_run.run_id)
    epoch = int(rec["checkpoint"].removeprefix("checkpoint_epoch_").removesuffix(".json"))
    lines: list[str] = []
    # a first command puts runctl's scripts on the fresh instance (where a version installs them once),
    # so that the count below is the training's own round trips
    assert training.runs_frame(ctx, instance, "gbudget").empty
    before = ctx.calls["ssm.SendCommand"]
    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", str(epoch + 2), "--sleep", "0"],
                                     project="gbudget", resume="auto", echo=lines.append)
    assert ctx.calls["ssm.SendCommand"] - before == 2  # the fetch rides in round trip 2
    chunks: list[str] = []
    result = training.follow_run(ctx, launch, chunks.append)
    log_lines = "".join(chunks).splitlines()
    assert result.exit_code == 0
    i = log_lines.index(f"resuming from {rec['checkpoint']} (epoch {epoch})")
    assert log_lines[i + 1].startswith(f"epoch {epoch + 1}/{epoch + 2} ")


def test_max_cost_uses_the_cost_tables_price(ctx, instance):
    inst = api.status(ctx, instance)
    p = guardian.plan(ctx, inst, guardian.Request(max_cost=0.01))
    quote = resources.price_book(ctx).on_demand(inst.region, inst.instance_type)
    assert p.price_per_hour == quote.usd_per_hour and p.end == "stop" and p.mode == "presigned"
    s3.ensure_bucket(ctx, BUCKET)  # as a training does first (no earlier test need have made it)
    env = guardian.launch_env(ctx, inst, p, "gtest", "r1", BUCKET)
    assert float(env["RUNCTL_PRICE_PER_HOUR"]) == pytest.approx(quote.usd_per_hour)


def test_autostop_beyond_the_urls_lifetime_is_refused_before_anything_runs(ctx, instance):
    with pytest.raises(GuardRefused) as err:
        follow_view.train_command(ctx, _train_cmd(instance, "--epochs", "1", autostop=8 * 86400), _fe([]))
    assert "presigned URLs cannot outlive 7 days" in err.value.message
    assert "runctl:run-id" not in api.status(ctx, instance).tags


def test_status_refresh_reads_the_guardian_record(ctx, instance, sandbox):
    follow_view.train_command(ctx, _train_cmd(instance, "--epochs", "300", "--sleep", "0.2", max_hours=1), _fe([]))
    inst = api.status(ctx, instance)
    record = guardian.refresh(ctx, inst)
    assert (record.found, record.state, record.alive) == (True, "watching", True)
    assert record.run_id == inst.tags["runctl:run-id"] and record.pid > 0
    assert inst.tags["runctl:guardian"] == "watching: max 1h"
    api.stop(ctx, instance, wait=True)


# --- a one-time spot instance: terminate only once every checkpoint on its disk is in S3 -------------

def test_the_post_policy_lets_the_guardian_upload_every_key_under_the_runs_prefix(ctx, spot_instance):
    import base64

    inst = api.status(ctx, spot_instance)
    p = guardian.plan(ctx, inst, guardian.Request(autostop_s=60))
    assert p.end == "terminate"
    s3.ensure_bucket(ctx, BUCKET)  # as a training does first (no earlier test need have made it)
    env = guardian.launch_env(ctx, inst, p, "gtest", "r1", BUCKET)
    (policy,) = [line.removeprefix('form-string = "policy=').removesuffix('"')
                 for line in env["RUNCTL_G_S3POST"].splitlines() if line.startswith('form-string = "policy=')]
    conditions = json.loads(base64.b64decode(policy))["conditions"]
    assert ["starts-with", "$key", "runctl/gtest/checkpoints/r1/"] in conditions  # nested paths included
    assert ["content-length-range", 0, 5 * 1024 ** 3] in conditions


def _checkpoints_in_s3(ctx, project: str, run_id: str) -> dict[str, int]:
    objects = s3.list_objects(ctx, BUCKET, guard.checkpoint_prefix(project, run_id))
    return {rel: json.loads(s3.get_bytes(ctx, BUCKET, obj.key)).get("epoch") for rel, obj in objects.items()
            if rel.startswith("checkpoint_epoch_")} | {rel: -1 for rel in objects if not rel.startswith("checkpoint_")}


def test_one_time_spot_autostop_uploads_every_checkpoint_then_terminates(ctx, spot_instance, sandbox):
    """The guardian used to upload only the newest checkpoint, then terminate: the others died with the disk."""
    lines: list[str] = []
    follow_view.train_command(ctx, _train_cmd(spot_instance, "--epochs", "3", "--sleep", "0", project="gall",
                                           autostop=1.0), _fe(lines))
    run_id = api.status(ctx, spot_instance).tags["runctl:run-id"]
    _wait_until(lambda: api.status(ctx, spot_instance).state in ("shutting-down", "terminated"), timeout=30,
                what="the guardian to terminate the instance")
    assert _checkpoints_in_s3(ctx, "gall", run_id) == {f"checkpoint_epoch_{e}.json": e for e in (1, 2, 3)}
    # what train said it would do is what it did
    said = "\n".join(lines)
    assert "uploads every checkpoint and terminates the instance (one-time spot: it cannot be stopped) only " \
           "once all are in S3 and no other project's checkpoints are on its disk" in said


def _kept_running(ctx, sandbox, iid: str, project: str) -> tuple[str, dict]:
    lines: list[str] = []
    follow_view.train_command(ctx, _train_cmd(iid, "--epochs", "3", "--sleep", "0", project=project, autostop=1.0),
                           _fe(lines))
    run_id = api.status(ctx, iid).tags["runctl:run-id"]
    rec = _wait_until(lambda: (r := _record(sandbox, iid, project, run_id))["state"] == "acted" and r,
                      timeout=30, what="the guardian to act")
    _wait_until(lambda: not _instance_processes(sandbox, iid, running=b"guardian.sh"),
                timeout=5, what="the guardian to exit")
    time.sleep(1.0)  # a terminate would have been asked for by now
    assert api.status(ctx, iid).state == "running"
    return run_id, rec


def test_one_time_spot_is_kept_running_when_a_checkpoint_cannot_be_uploaded(ctx, spot_instance, sandbox):
    # a checkpoint whose S3 key would exceed S3's 1024 bytes: no upload can copy it
    deep = _disk(sandbox, spot_instance) / "gkept" / "checkpoints" / "/".join(["d" * 200] * 5)
    deep.mkdir(parents=True)
    (deep / "weights.pt").write_bytes(b"a checkpoint S3 cannot hold under this name")
    run_id, rec = _kept_running(ctx, sandbox, spot_instance, "gkept")
    assert (rec["upload"], rec["uploaded"], rec["upload_total"], rec["upload_failed"]) == ("partial", "3", "4", "1")
    assert rec["instance"].startswith("kept running: 1 of 4 checkpoints not uploaded (dddd")
    assert rec["instance"].endswith("/weights.pt: its S3 key would be over S3's 1024 bytes)")
    assert set(_checkpoints_in_s3(ctx, "gkept", run_id)) == {f"checkpoint_epoch_{e}.json" for e in (1, 2, 3)}
    log = (_disk(sandbox, spot_instance) / "gkept" / "runs" / run_id / "log").read_text()
    assert "[runctl guardian] instance kept running, and billed, until you act: 1 of 4 checkpoints not uploaded" in log
    assert f"`runctl aws stop {spot_instance}`" in log
    # `aws status` reads the record: the user sees what was uploaded and why the instance still runs
    summary = api.status(ctx, spot_instance).summary()
    assert "guardian: acted: autostop, 3 of 4 checkpoints uploaded at " in summary
    assert "; instance kept running: 1 of 4 checkpoints not uploaded" in summary


def test_one_time_spot_is_kept_running_while_another_project_has_checkpoints(ctx, spot_instance, sandbox):
    other = _disk(sandbox, spot_instance) / "someone-else" / "checkpoints"
    other.mkdir(parents=True)
    (other / "model.pt").write_bytes(b"another project's only copy")
    run_id, rec = _kept_running(ctx, sandbox, spot_instance, "gmine")
    assert rec["upload"] == "ok" and rec["uploaded"] == rec["upload_total"] == "3"
    assert rec["instance"] == ("kept running: other projects' checkpoints on this disk, which this guardian "
                               "cannot copy: someone-else (1 file)")
    assert _checkpoints_in_s3(ctx, "gmine", run_id) == {f"checkpoint_epoch_{e}.json": e for e in (1, 2, 3)}
    assert (other / "model.pt").exists()
