"""A fleet run in the sandbox: three nodes rendezvous over loopback on node 0's private address, and
a failure on node 2 ends the run on nodes 0 and 1."""

from __future__ import annotations

import pytest
from fleet_helpers import PROJECT, disk

from runctl_jupyter import api
from runctl_jupyter.errors import TrainingFailed


def test_three_nodes_rendezvous_on_node_0s_address(ctx, sandbox, fleet3, project):
    fleet = api.fleet_find(ctx, fleet3)
    master = fleet.nodes[0].private_ip
    assert len({inst.private_ip for inst in fleet.nodes}) == 3 and master.startswith("127.")
    train_ctx = api.context()  # its own call counts
    launch = api.fleet_train(train_ctx, fleet3, project / "rendezvous.py", [], project=PROJECT)
    assert train_ctx.calls["s3.PutObject"] == 1  # one bundle, fetched by every node
    assert launch.master_addr == master and len(launch.launches) == 3
    assert len({la.run_id for la in launch.launches}) == 1
    out: list[str] = []
    result = api.fleet_follow(ctx, launch, out.append, all_nodes=True)
    text = "".join(out)
    assert result.state == "succeeded", text
    for i in range(3):
        assert f"[node {i}] node {i}/3 rank {i}/3 local_rank 0 master {master}:29500" in text
        assert f"[node {i}] ranks [0, 1, 2]" in text
        assert f"[node {i}] [runctl] exit code 0" in text
    assert all(line.startswith("[node ") for line in text.splitlines())
    # the run and its code on each node's own disk
    for inst in fleet.nodes:
        base = disk(sandbox, inst.instance_id) / "runctl" / PROJECT
        assert (base / "code" / "rendezvous.py").is_file()
        assert (base / "runs" / launch.run_id / "exit_code").read_text().strip() == "0"


def test_a_failure_on_node_2_ends_the_run_on_nodes_0_and_1(ctx, sandbox, fleet3, project):
    launch = api.fleet_train(ctx, fleet3, project / "rendezvous.py", ["--fail-rank", "2", "--timeout", "300"],
                             project=PROJECT)
    out: list[str] = []
    notes: list[str] = []
    result = api.fleet_follow(ctx, launch, out.append, echo=notes.append)  # node 0's log only
    assert result.state == "failed"
    assert result.first_failure == 2 and result.nodes[2].exit_code == 1 and result.nodes[2].outcome == "failed"
    assert result.stopped_after == [0, 1]  # by runctl following the run, or their guardians
    assert [result.nodes[i].outcome for i in (0, 1)] == ["stopped", "stopped"]
    # whoever was first to end nodes 0 and 1 (runctl here, or their guardians), node 2 is named as the cause
    assert all(n.startswith(f"node 2 ({launch.launches[2].instance_id}) failed") for n in notes
               if "ending the run on" in n), notes
    assert "[runctl] received SIGTERM (stop requested)" in "".join(out)  # node 0's own log says it was stopped
    error = api.fleet_failure(result)
    assert isinstance(error, TrainingFailed) and error.exit_code == 5
    assert f"node 2 ({launch.launches[2].instance_id}) failed (exit code 1) first" in error.message
    # every node's claim is free again: a new fleet run starts
    again = api.fleet_train(ctx, fleet3, project / "rendezvous.py", [], project=PROJECT)
    assert api.fleet_follow(ctx, again, lambda _t: None).state == "succeeded"


def test_a_busy_node_refuses_the_whole_run_before_anything_changes(ctx, sandbox, fleet2, project):
    from runctl_jupyter import training
    from runctl_jupyter.errors import GuardRefused

    fleet = api.fleet_find(ctx, fleet2)
    busy = training.start_training(ctx, fleet.nodes[1].instance_id, project / "rendezvous.py", [],
                                    project=PROJECT, extra_env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1",
                                                                "RANK": "1", "WORLD_SIZE": "2", "NODE_RANK": "1",
                                                                "NNODES": "2", "LOCAL_RANK": "0"})
    train_ctx = api.context()
    with pytest.raises(GuardRefused) as err:
        api.fleet_train(train_ctx, fleet2, project / "rendezvous.py", [], project=PROJECT)
    assert f"node 1 ({fleet.nodes[1].instance_id}: run {busy.run_id}" in err.value.message
    assert "nothing was started" in err.value.message
    # one status command for both nodes (+ installing runctl's scripts on node 0, new to runctl): no upload,
    # no launch, and node 0's disk holds no run
    assert train_ctx.calls["s3.PutObject"] == 0 and train_ctx.calls["ssm.SendCommand"] <= 3
    assert not (disk(sandbox, fleet.nodes[0].instance_id) / "runctl" / PROJECT).exists()


def test_with_nobody_watching_a_failure_on_node_2_ends_the_run_on_nodes_0_and_1(ctx, sandbox, fleet3, project):
    """No notebook, no shell follows the run (`fleet train` without --wait): node 2's guardian posts its
    end to S3, and the guardians of nodes 0 and 1 see it and stop their trainings as `stop` would."""
    import time

    from runctl_jupyter.aws import s3
    from runctl_jupyter.remote.replies import GuardianRecord

    notes: list[str] = []
    launch = api.fleet_train(ctx, fleet3, project / "rendezvous.py", ["--fail-rank", "2", "--timeout", "300"],
                             project=PROJECT, echo=notes.append)
    # every node's guardian says so, told once for all of them
    assert [line for line in notes if "even with no notebook watching" in line] == [
        "[every node] Guardian watching: fleet peers; when the run fails or is interrupted on another node, it stops "
        "this node's training (SIGTERM: it saves a checkpoint) and uploads its newest checkpoint, even with no "
        "notebook watching"]
    runs = [disk(sandbox, la.instance_id) / "runctl" / PROJECT / "runs" / launch.run_id for la in launch.launches]
    deadline = time.monotonic() + 60
    while not all((run / "exit_code").exists() for run in runs):
        assert time.monotonic() < deadline, [run.joinpath("log").read_text() for run in runs]
        time.sleep(0.2)
    assert (runs[2] / "exit_code").read_text().strip() == "1"
    # what node 2 told the others, in S3
    keys = list(s3.list_objects(ctx, s3.bucket_for(ctx), f"runctl/{PROJECT}/fleet-ends/{launch.run_id}/"))
    assert keys == ["node-2-exit-1"]
    for node in (0, 1):
        # the guardian records its action last (after the log line and the checkpoint upload)
        while (record := GuardianRecord.parse((runs[node] / "guardian.fields").read_text())).state != "acted":
            assert time.monotonic() < deadline, record
            time.sleep(0.2)
        assert (record.action, record.upload) == ("fleet-peer", "none")  # rendezvous.py writes no checkpoint
        log = (runs[node] / "log").read_text()
        assert "[runctl] received SIGTERM (stop requested)" in log  # stopped as `stop` stops it, not killed
        assert "[runctl guardian] fleet: node 2 (exit-1) ended the run, so this node's training was stopped: " \
               "no checkpoint to upload" in log
    # fleet monitor tells the story afterwards: node 2 failed, the others were stopped
    info = api.fleet_run_info(ctx, fleet3, project=PROJECT)
    assert info is not None and not info.running
    header = info.header()
    assert "node 2 (" in header and "exited (exit code 1)" in header
    assert header.count("stopped") == 2, header
    assert header.endswith("\n  ended by: node 2 (exit-1), as the guardians said (the other nodes' guardians stop "
                           "their runs)"), header


def test_with_nobody_watching_and_autostop_a_failed_fleet_run_stops_every_instance(ctx, sandbox, fleet2, project):
    """`fleet train --autostop`: node 1 fails, node 0's guardian ends node 0's run (it checkpoints), then
    each node's guardian stops its idle instance: nothing is left running, and billed, with no notebook."""
    import time

    launch = api.fleet_train(ctx, fleet2, project / "rendezvous.py", ["--fail-rank", "1", "--timeout", "300"],
                             project=PROJECT, autostop=1.0)
    deadline = time.monotonic() + 90
    while (states := [api.status(ctx, la.instance_id).state for la in launch.launches]) != ["stopped", "stopped"]:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    node0 = disk(sandbox, launch.launches[0].instance_id) / "runctl" / PROJECT / "runs" / launch.run_id
    log = (node0 / "log").read_text()
    assert "[runctl guardian] fleet: node 1 (exit-1) ended the run, so this node's training was stopped" in log
    assert "autostop: idle for 1s (stopping the instance)" in log
