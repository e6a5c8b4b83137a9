"""Training end to end in the sandbox: the script really runs in the instance's directory."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from itest_helpers import REPO, run_cli

from runctl_jupyter import api, follow_view, training
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import GuardRefused, TrainingFailed, UsageError
from runctl_jupyter.sandbox import control

SCRIPT = REPO / "training" / "train_with_checkpoints.py"


def _disk(sandbox, iid: str) -> Path:
    return Path(sandbox.directory) / "instances" / iid


def _args_line(log: str) -> list[str]:
    line = next(line for line in log.splitlines() if line.startswith("args: "))
    return json.loads(line[len("args: "):])


def _run_to_end(ctx, iid, args, **kw) -> tuple[training.Launch, str, int | None]:
    launch = training.start_training(ctx, iid, SCRIPT, args, **kw)
    chunks: list[str] = []
    result = training.follow_run(ctx, launch, chunks.append)
    return launch, "".join(chunks), result.exit_code


def test_train_wait_streams_log_and_progress(ctx, instance, sandbox):
    launch, log, code = _run_to_end(ctx, instance, ["--epochs", "3", "--sleep", "0"], project="itest")
    assert code == 0
    assert [line.split()[1] for line in log.splitlines() if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert log.rstrip().endswith("[runctl] exit code 0")
    # The layout of DESIGN.md, on the instance's own disk.
    base = _disk(sandbox, instance) / "runctl" / "itest"
    assert (base / "code" / "train_with_checkpoints.py").is_file()  # training/ is its own project (.runctl.toml)
    assert (base / "checkpoints" / "checkpoint_epoch_3.json").is_file()
    assert (base / "runs" / launch.run_id / "exit_code").read_text().strip() == "0"


def test_arguments_arrive_byte_exact(ctx, instance):
    hostile = ["--epochs", "1", "--sleep", "0", "--", "$(touch /tmp/pwned)", "`id`", "a b", "'\"", ";rm -rf ~",
               "line1\nline2", "ünïcødé ✓", "", "*", "--resume", "$HOME", "%s%n", "\\"]
    _, log, code = _run_to_end(ctx, instance, hostile, project="itest")
    assert code == 0
    assert _args_line(log) == hostile
    assert not Path("/tmp/pwned").exists()


def test_second_training_is_refused_with_the_docs_message(ctx, instance):
    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", "50", "--sleep", "0.2"], project="itest")
    with pytest.raises(GuardRefused) as err:
        training.start_training(ctx, instance, SCRIPT, ["--epochs", "1"], project="itest")
    assert err.value.message == f"Training already running on instance {instance} (PID: {launch.pid})."
    assert [s.command for s in err.value.steps] == [
        f"aws monitor {instance}", f"aws stop {instance}", f"aws monitor {instance} --follow"]
    api.stop(ctx, instance, wait=True)


def test_twenty_concurrent_trains_start_exactly_one(ctx, instance):
    outcomes: list[str] = []

    def race():
        try:
            training.start_training(api.context(), instance, SCRIPT, ["--epochs", "30", "--sleep", "0.2"],
                                    project="itest", sync_code=False)
            outcomes.append("started")
        except GuardRefused:
            outcomes.append("refused")

    training.start_training(ctx, instance, SCRIPT, ["--epochs", "1", "--sleep", "0"], project="itest")  # sync once
    training.wait_for_exit(ctx, training.Launch(instance, "itest", "", 0, ""), timeout_s=60)
    threads = [threading.Thread(target=race) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes).count("started") == 1 and len(outcomes) == 20
    api.stop(ctx, instance, force=True)


def test_no_sync_code_on_a_never_synced_instance_is_explained(ctx, instance):
    with pytest.raises(GuardRefused) as err:
        training.start_training(ctx, instance, SCRIPT, [], project="itest", sync_code=False)
    assert "never been synced" in err.value.message


def test_failed_script_is_a_failure(ctx, instance, capsys):
    launch, log, code = _run_to_end(ctx, instance, ["--epochs", "3", "--sleep", "0", "--fail-at-epoch", "2"],
                                    project="itest")
    assert code == 3
    result = training.finish_run(ctx, launch, code, log)
    err = training.failure(result)
    assert isinstance(err, TrainingFailed) and err.exit_code == 5 and err.result.exit_code == 3
    assert api.status(ctx, instance).tags["runctl:run-state"] == "exit 3"


def test_cli_failed_training_exits_5(sandbox, instance):
    r = run_cli("--sandbox", "aws", "train", instance, str(SCRIPT), "--project", "itest", "--wait", "--",
                "--epochs", "2", "--sleep", "0", "--fail-at-epoch", "1")
    assert r.returncode == 5, r.stderr
    assert "failed with exit code 3" in r.stderr


def test_train_on_stopped_instance_is_refused_and_changes_nothing(ctx, instance, sandbox):
    api.stop(ctx, instance, wait=True)
    info = control.status(Path(sandbox.directory))
    before = control.snapshot(info)
    with pytest.raises(GuardRefused) as err:
        training.start_training(ctx, instance, SCRIPT, ["--epochs", "1"], project="itest")
    assert "is stopped" in err.value.message
    assert err.value.steps[0].command == f"aws start {instance} --wait"
    with pytest.raises(UsageError):
        training.start_training(ctx, instance, "no/such/script.py", [], project="itest")
    assert control.snapshot(info) == before


def test_stop_uploads_checkpoints_before_stopping_then_terminate_proceeds(ctx, instance, sandbox):
    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", "100", "--sleep", "0.2"], project="itest")
    # Let it write a couple of checkpoints, then stop: SIGTERM → checkpoint → upload → stop.
    disk = _disk(sandbox, instance) / "runctl" / "itest" / "checkpoints"
    _wait_until(lambda: len(list(disk.glob("checkpoint_epoch_*.json"))) >= 2)
    lines: list[str] = []
    api.stop(ctx, instance, wait=True, echo=lines.append)
    assert any(line.startswith("Saved ") and "to s3://runctl-sandbox/runctl/ (newest: runctl/itest/checkpoints/"
               in line for line in lines), lines
    newest = max(disk.glob("checkpoint_epoch_*.json"), key=lambda p: int(p.stem.split("_")[-1]))
    # The newest checkpoint (written on SIGTERM) has a byte-identical copy in S3 (under this run's
    # prefix, unless an identical file was already there from an earlier run of the same project).
    objects = s3.list_objects(ctx, "runctl-sandbox", "runctl/itest/checkpoints/")
    copies = [o for rel, o in objects.items() if rel.endswith("/" + newest.name)]
    assert copies and any(s3.get_bytes(ctx, "runctl-sandbox", o.key) == newest.read_bytes() for o in copies)
    assert launch.run_id in "".join(objects) or len(copies) > 0
    assert api.status(ctx, instance).state == "stopped"
    lines.clear()
    api.terminate(ctx, instance, echo=lines.append)
    assert any("verified copy" in line for line in lines)


def test_terminate_is_blocked_while_checkpoints_have_no_copy(ctx, instance):
    # A seed no other test uses: no identical checkpoint can already be in S3.
    _run_to_end(ctx, instance, ["--epochs", "2", "--sleep", "0", "--seed", "9137"], project="itest")
    with pytest.raises(GuardRefused) as err:
        api.terminate(ctx, instance)
    assert err.value.message == ("Termination blocked: instance has checkpoints. "
                                 "Use --force to override or use 'stop' instead.")
    assert err.value.details[0] == f"⚠️  WARNING: Instance {instance} has checkpoints that will be lost on termination."
    assert "   Consider using 'stop' instead to preserve checkpoints." in err.value.details
    assert api.status(ctx, instance).state == "running"
    api.terminate(ctx, instance, force=True)
    assert api.status(ctx, instance).state in ("shutting-down", "terminated")


def test_unchanged_project_resync_uploads_nothing(ctx, instance):
    _run_to_end(ctx, instance, ["--epochs", "1", "--sleep", "0"], project="itest")
    ctx2 = api.context()
    launch = training.start_training(ctx2, instance, SCRIPT, ["--epochs", "1", "--sleep", "0"], project="itest")
    assert launch.synced.get("uploaded") == "0"
    assert ctx2.calls["s3.PutObject"] == 0
    assert ctx2.calls["ssm.SendCommand"] == 2  # manifest read + claim-and-launch


def test_monitor_reattaches_from_a_new_shell(sandbox, instance, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    ctx = api.context()
    training.start_training(ctx, instance, SCRIPT, ["--epochs", "4", "--sleep", "1.5"], project="itest")
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()  # a "restarted kernel": nothing in memory about the run
    ip.run_line_magic("load_ext", "runctl_jupyter")
    ip.user_ns["iid"] = instance
    r = ip.run_cell("%runctl aws monitor $iid --follow")
    assert r.success, r.error_in_exec
    out = capsys.readouterr().out
    assert "epoch 4/4" in out and "succeeded (exit code 0)" in out


def test_runs_and_checkpoints_frames(ctx, instance):
    first, _, _ = _run_to_end(ctx, instance, ["--epochs", "1", "--sleep", "0"], project="itest")
    launch, _, _ = _run_to_end(ctx, instance, ["--epochs", "2", "--sleep", "0"], project="itest")
    runs = training.runs_frame(ctx, instance, project="itest")
    assert list(runs.run_id[:2]) == [launch.run_id, first.run_id]  # newest first
    assert runs.attrs["runctl_caption"].endswith("newest first")  # (a cut listing says PARTIAL)
    row = runs[runs.run_id == launch.run_id].iloc[0]
    assert row.exit_code == 0 and row.args == ["--epochs", "2", "--sleep", "0"]
    assert str(runs["started"].dtype).startswith("datetime64")
    cks = training.checkpoints_frame(ctx, instance, project="itest")
    assert set(cks[cks["where"] == "instance"].checkpoint) >= {"checkpoint_epoch_1.json", "checkpoint_epoch_2.json"}


def _wait_until(predicate, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_a_follower_reports_a_run_ended_by_stop_as_stopped(ctx, instance, sandbox):
    """`train` without --wait keeps following in the background; `stop` from elsewhere ends the run."""
    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", "100", "--sleep", "0.2"], project="itest")
    outcome: dict[str, training.TrainResult] = {}

    def follow() -> None:
        try:
            outcome["result"] = follow_view.wait_in_foreground(api.context(), launch, lambda _t: None)
        except Exception as exc:  # shown by the assertion below
            outcome["error"] = exc

    follower = threading.Thread(target=follow)
    follower.start()
    disk = _disk(sandbox, instance) / "runctl" / "itest" / "checkpoints"
    _wait_until(lambda: len(list(disk.glob("checkpoint_epoch_*.json"))) >= 1)
    api.stop(ctx, instance, wait=True, echo=lambda _line: None)
    follower.join(timeout=60)
    assert "error" not in outcome, outcome["error"]
    result = outcome["result"]
    # exit 0 when the follower read the log's end before the instance stopped; None when the
    # instance stopped first (the follower then says so): stopped either way, never "succeeded"
    assert result.state == "stopped" and result.exit_code in (0, None), result
    assert api.status(ctx, instance).tags["runctl:run-state"] == "stopped"


def test_train_uses_the_instances_project_and_terminate_guards_every_project(ctx, sandbox, tmp_path):
    """`create --project alpha` then `train other/train.py`: the run belongs to alpha (what monitor,
    stop and the guard read); a later `--project gamma` run moves the tag, yet terminate still sees
    alpha's checkpoints on the disk."""
    from sandbox_env import fresh_instance, make_project

    script = make_project(tmp_path / "beta", "beta")
    with fresh_instance(ctx, "alpha") as iid:
        first = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0", "--seed", "7101"])
        training.follow_run(ctx, first, lambda _t: None)
        assert first.project == "alpha"
        assert (_disk(sandbox, iid) / "runctl" / "alpha" / "checkpoints" / "checkpoint_epoch_1.json").is_file()
        second = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0", "--seed", "7102"],
                                         project="gamma")
        training.follow_run(ctx, second, lambda _t: None)
        assert api.status(ctx, iid).project == "gamma"
        with pytest.raises(GuardRefused) as err:
            api.terminate(ctx, iid)
        listed = "\n".join(err.value.details)
        assert "runctl/alpha/checkpoints/checkpoint_epoch_1.json" in listed
        assert "runctl/gamma/checkpoints/checkpoint_epoch_1.json" in listed
        assert api.status(ctx, iid).state == "running"


def test_terminate_guard_on_a_one_time_spot_instance_says_what_stop_does_there(ctx):
    from sandbox_env import fresh_instance

    with fresh_instance(ctx, "itest", spot=True) as iid:
        _run_to_end(ctx, iid, ["--epochs", "1", "--sleep", "0", "--seed", "7201"], project="itest")
        with pytest.raises(GuardRefused) as err:
            api.terminate(ctx, iid)
        assert err.value.details[0] == f"⚠️  WARNING: Instance {iid} has checkpoints that will be lost on termination."
        assert ("   Consider using 'stop' instead: on this one-time spot instance it uploads the checkpoints "
                "to S3, then terminates it (AWS cannot stop it).") in err.value.details
        assert "   Consider using 'stop' instead to preserve checkpoints." not in err.value.details


def test_monitor_of_an_unknown_run_is_an_error_not_an_empty_answer(ctx, instance):
    _run_to_end(ctx, instance, ["--epochs", "1", "--sleep", "0"], project="itest")
    r = run_cli("--sandbox", "aws", "monitor", instance, "--run", "20990101T000000Z-abcdef")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith(f"Error: No run 20990101T000000Z-abcdef of project itest on {instance}.\nTo resolve:\n")
    assert f"runctl aws runs {instance} --project itest" in r.stderr


def test_a_follower_whose_instance_stops_under_it_ends_as_stopped(ctx, instance):
    """The instance stopped without runctl's stop (console, a guardian's presigned call): the follower
    cannot read the log any more and says so, instead of an SSM error."""
    from runctl_jupyter.aws import ec2

    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", "100", "--sleep", "0.2"], project="itest")
    written: list[str] = []
    outcome: dict = {}

    def follow() -> None:
        try:
            outcome["result"] = follow_view.wait_in_foreground(api.context(), launch, written.append)
        except Exception as exc:  # shown by the assertion below
            outcome["error"] = exc

    follower = threading.Thread(target=follow)
    follower.start()
    _wait_until(lambda: any("epoch 1/100" in w for w in written))
    ec2.stop(ctx, instance)
    follower.join(timeout=60)
    assert "error" not in outcome, outcome["error"]
    assert outcome["result"].state == "stopped" and outcome["result"].exit_code is None
    assert f"instance {instance} is stopp" in "".join(written)


STANDIN = REPO / "tests" / "data" / "dataloader_standin.py"


def test_stop_of_a_training_with_dataloader_workers_saves_uploads_and_says_stopped(ctx, instance, sandbox):
    """PyTorch's DataLoader workers die on SIGTERM and crash their training (reference/gpu/): stop
    signals only the training's main process, which saves; its final checkpoint reaches S3 and the run
    reads as stopped, not failed."""
    launch = training.start_training(ctx, instance, STANDIN, ["4", "0.5"], project="itest")
    log = _disk(sandbox, instance) / "runctl" / "itest" / "runs" / launch.run_id / "log"
    _wait_until(lambda: "workers ready" in log.read_text())
    lines: list[str] = []
    api.stop(ctx, instance, wait=True, echo=lines.append)
    assert f"Asked training run {launch.run_id} (PID {launch.pid}) to checkpoint and stop (SIGTERM): it exited " \
           "with code 0" in lines, lines
    objects = s3.list_objects(ctx, "runctl-sandbox", f"runctl/itest/checkpoints/{launch.run_id}/")
    assert [s3.get_bytes(ctx, "runctl-sandbox", o.key) for o in objects.values()] == [b"final weights\n"]
    api.start(ctx, instance, wait=True)
    runs = training.runs_frame(ctx, instance, "itest")
    row = runs[runs.run_id == launch.run_id].iloc[0]
    assert (row.state, int(row.exit_code)) == ("stopped", 0)


def test_monitor_of_a_run_killed_without_an_exit_code_says_so(ctx, instance, sandbox):
    """The kernel's OOM killer (or a kill -9) ends the whole run, wrapper included: no exit code is
    recorded, and monitor says that instead of an empty "exit code"."""
    import os
    import signal

    launch = training.start_training(ctx, instance, SCRIPT, ["--epochs", "100", "--sleep", "0.2"], project="itest")
    run_dir = _disk(sandbox, instance) / "runctl" / "itest" / "runs" / launch.run_id
    wrapper = int((run_dir / "pid").read_text().split()[0])
    os.killpg(os.getpgid(wrapper), signal.SIGKILL)
    _wait_until(lambda: training.read_status(ctx, instance, "itest", launch.run_id).state == "exited", timeout=20)
    assert not (run_dir / "exit_code").exists()
    r = run_cli("--sandbox", "aws", "monitor", instance)
    assert r.returncode == 0 and "epoch 1/100" in r.stdout, r.stdout + r.stderr  # the log up to the kill
    assert f"Run {launch.run_id} on {instance}: exited (no exit code: its process ended without recording one; " \
           "killed, or the instance rebooted)\n" in r.stderr, r.stderr
