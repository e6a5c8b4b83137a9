"""The guardian end to end in the sandbox: spot notice, autostop, budget caps, resume, no leftovers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sandbox_env import REPO

from runctl_jupyter import api, guardian, resources, training
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import GuardRefused
from runctl_jupyter.sandbox import control

SCRIPT = REPO / "training" / "train_with_checkpoints.py"
BUCKET = "runctl-sandbox"


def _disk(sandbox, iid: str) -> Path:
    return Path(sandbox.directory) / "instances" / iid / "runctl"


def _wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _instance_processes(sandbox, iid: str) -> list[int]:
    """Live processes carrying the sandbox's marker RUNCTL_SANDBOX_INSTANCE=<iid> (any program)."""
    want = f"RUNCTL_SANDBOX_INSTANCE={iid}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if want in env and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found.append(int(entry))
    return found


def _fe(lines: list[str]):
    return SimpleNamespace(echo=lines.append, notebook=False, prefix="runctl")


def _train_cmd(iid, *script_args, project="gtest", autostop=None, max_hours=None, max_cost=None, resume=None):
    return SimpleNamespace(instance_id=iid, script=str(SCRIPT), script_args=list(script_args), project=project,
                           sync_code=True, bucket=None, resume=resume, autostop=autostop, max_hours=max_hours,
                           max_cost=max_cost, wait=False, project_root=None)


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
    prefix = training.checkpoint_prefix("gspot", launch.run_id)
    objects = _wait_until(lambda: s3.list_objects(ctx, BUCKET, prefix), timeout=6, what="the checkpoint in S3")
    elapsed = time.monotonic() - t0
    # Still before the reclaim: the instance and its disk are there to compare with.
    assert api.status(ctx, spot_instance).state == "running"
    (rel, obj), = objects.items()
    on_disk = (base / "checkpoints" / rel).read_bytes()
    assert s3.get_bytes(ctx, BUCKET, obj.key) == on_disk
    rec = _wait_until(lambda: (r := _record(sandbox, spot_instance, "gspot", launch.run_id))["state"] == "acted"
                      and r, what="the guardian record")
    assert rec["action"] == "spot-notice" and rec["upload"] == "ok" and rec["checkpoint"] == rel
    log = (base / "runs" / launch.run_id / "log").read_text()
    assert f"[runctl guardian] spot interruption notice: {rel} uploaded" in log
    assert f"received SIGTERM: saved {rel}" in log
    print(f"\nnotice → checkpoint in S3: {elapsed:.2f} s")
    _wait_until(lambda: api.status(ctx, spot_instance).state == "terminated", timeout=15, what="the reclaim")
    _wait_until(lambda: not _instance_processes(sandbox, spot_instance), timeout=5, what="no processes left")


# --- autostop --------------------------------------------------------------------------------------

def test_autostop_stops_an_idle_instance_and_leaves_no_guardian(ctx, instance, sandbox):
    lines: list[str] = []
    training.train_command(ctx, _train_cmd(instance, "--epochs", "2", "--sleep", "0", autostop=3.0), _fe(lines))
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
    assert s3.list_objects(ctx, BUCKET, training.checkpoint_prefix("gtest", run_id))


def test_guardian_exits_when_the_training_ends_without_limits(ctx, spot_instance, sandbox):
    launch = training.start_training(ctx, spot_instance, SCRIPT, ["--epochs", "2", "--sleep", "0"], project="gdone")
    training.wait_for_exit(ctx, launch, timeout_s=30)
    _wait_until(lambda: _record(sandbox, spot_instance, "gdone", launch.run_id)["state"] == "done",
                timeout=10, what="the guardian to finish")
    _wait_until(lambda: not [p for p in _instance_processes(sandbox, spot_instance)
                             if b"guardian.sh" in Path(f"/proc/{p}/cmdline").read_bytes()],
                timeout=5, what="no guardian process")


# --- budget caps + resume ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def budget_run(sandbox):
    """A run capped by --max-hours 0.001 (3.6 s) on an on-demand instance."""
    ctx = api.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="gbudget").instance_id
    lines: list[str] = []
    training.train_command(ctx, _train_cmd(iid, "--epochs", "500", "--sleep", "0.2", project="gbudget",
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
    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", str(epoch + 2), "--sleep", "0"],
                                     project="gbudget", resume="auto", echo=lines.append)
    assert ctx.calls["ssm.SendCommand"] == 2  # the fetch rides in round trip 2
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
    env = guardian.launch_env(ctx, inst, p, "gtest", "r1", BUCKET)
    assert float(env["RUNCTL_PRICE_PER_HOUR"]) == pytest.approx(quote.usd_per_hour)


def test_autostop_beyond_the_urls_lifetime_is_refused_before_anything_runs(ctx, instance):
    with pytest.raises(GuardRefused) as err:
        training.train_command(ctx, _train_cmd(instance, "--epochs", "1", autostop=8 * 86400), _fe([]))
    assert "presigned URLs cannot outlive 7 days" in err.value.message
    assert "runctl:run-id" not in api.status(ctx, instance).tags


def test_status_refresh_reads_the_guardian_record(ctx, instance, sandbox):
    training.train_command(ctx, _train_cmd(instance, "--epochs", "300", "--sleep", "0.2", max_hours=1), _fe([]))
    inst = api.status(ctx, instance)
    fields = guardian.refresh(ctx, inst)
    assert fields["state"] == "watching" and fields["guardian_alive"] == "1"
    assert inst.tags["runctl:guardian"] == "watching: max 1h"
    api.stop(ctx, instance, wait=True)
