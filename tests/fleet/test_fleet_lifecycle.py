"""Fleets end to end in the sandbox: a partial start rolled back, --torchrun, and the checkpoint
guard on every node (stop uploads each node's checkpoints; terminate refuses on any node's doubt)."""

from __future__ import annotations

import shutil

import pytest
from fleet_helpers import HERE, PROJECT, disk

from runctl_jupyter import api
from runctl_jupyter.errors import BackendError, GuardRefused
from runctl_jupyter.fleet import live_members


def test_a_node_that_cannot_start_rolls_back_the_others(ctx, sandbox, fleet3, project):
    fleet = api.fleet_find(ctx, fleet3)
    # node 2's code folder cannot be made (a file is in its way): its code sync fails after its claim
    blocker = disk(sandbox, fleet.nodes[2].instance_id) / "runctl" / PROJECT
    blocker.mkdir(parents=True)
    (blocker / "code").write_text("not a folder")
    with pytest.raises(BackendError) as err:
        api.fleet_train(ctx, fleet3, project / "rendezvous.py", ["--timeout", "300"], project=PROJECT)
    message = err.value.message
    assert f"did not start on node 2 ({fleet.nodes[2].instance_id})" in message
    assert "runctl ended the run on node 0, node 1, which had started (every node starts or none does)" in message
    for inst in fleet.nodes:  # every claim is free again, and no training process is left
        assert not (disk(sandbox, inst.instance_id) / "runctl" / "lock").exists()
    for inst in fleet.nodes[:2]:
        runs = list((disk(sandbox, inst.instance_id) / "runctl" / PROJECT / "runs").iterdir())
        assert len(runs) == 1 and (runs[0] / "exit_code").is_file()
    (blocker / "code").unlink()
    again = api.fleet_train(ctx, fleet3, project / "rendezvous.py", [], project=PROJECT)
    assert api.fleet_follow(ctx, again, lambda _t: None).state == "succeeded"


def test_torchrun_gets_its_settings_from_pet_variables(ctx, fleet2, project):
    stub = project / "torch" / "distributed"
    stub.mkdir(parents=True)
    (project / "torch" / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("")
    shutil.copy(HERE / "torchrun_stub.py", stub / "run.py")
    launch = api.fleet_train(ctx, fleet2, project / "rendezvous.py", [], project=PROJECT, torchrun=True,
                             nproc_per_node="2")
    out: list[str] = []
    result = api.fleet_follow(ctx, launch, out.append, all_nodes=True)
    text = "".join(out)
    assert result.state == "succeeded", text
    master = launch.master_addr
    for node in (0, 1):
        assert (f"[node {node}] torchrun stub: PET_MASTER_ADDR={master} PET_MASTER_PORT=29500 PET_NNODES=2 "
                f"PET_NODE_RANK={node} nproc_per_node=2") in text
        for local in (0, 1):
            assert f"[node {node}] node {node}/2 rank {node * 2 + local}/4 local_rank {local}" in text, text
    assert text.count("ranks [0, 1, 2, 3]") == 4


def test_stop_and_terminate_keep_every_nodes_checkpoints(ctx, sandbox, fleet2):
    fleet = api.fleet_find(ctx, fleet2)
    checkpoint = disk(sandbox, fleet.nodes[1].instance_id) / "runctl" / PROJECT / "checkpoints" / "step_10.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights" * 100)
    notes: list[str] = []
    with pytest.raises(GuardRefused) as err:
        api.fleet_terminate(ctx, fleet2, echo=notes.append)
    assert f"blocked on node 1 ({fleet.nodes[1].instance_id}): no node was terminated" in err.value.message
    assert any("step_10.pt" in line for line in err.value.details)
    assert [inst.state for inst in api.fleet_find(ctx, fleet2).nodes] == ["running", "running"]
    api.fleet_stop(ctx, fleet2, wait=True, echo=notes.append)
    assert any(line.startswith("[node 1] Saved 1/1 checkpoint(s) to s3://") for line in notes), notes
    assert [inst.state for inst in api.fleet_find(ctx, fleet2).nodes] == ["stopped", "stopped"]
    api.fleet_terminate(ctx, fleet2, echo=notes.append)  # the stop's verified record lets it through
    assert live_members(ctx, fleet2) == []
    ec2 = ctx.client("ec2")
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:runctl:fleet", "Values": [fleet2]}])
    assert groups["SecurityGroups"] == []


def test_every_call_a_fleet_makes_is_in_the_iam_policy(sandbox, project):
    """Action by action (conditions need real IAM): docs/iam-policy.json lets a user run a fleet (its EC2 and
    SSM calls; S3 is the same as one instance's, checked in tests/integration/test_iam_policy.py)."""
    import json
    from fnmatch import fnmatchcase

    from fleet_helpers import REPO, make_fleet

    policy = json.loads((REPO / "docs" / "iam-policy.json").read_text())
    allowed = [a for st in policy["Statement"] if st["Effect"] == "Allow"
               for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])]
    calls = api.context()
    for name in make_fleet(calls, 2, "g5.xlarge"):  # a GPU type: the placement group too
        launch = api.fleet_train(calls, name, project / "rendezvous.py", [], project=PROJECT)
        api.fleet_follow(calls, launch, lambda _t: None)
        api.fleet_status(calls, name)
    actions = {op.replace(".", ":", 1) for op in calls.calls if op.startswith(("ec2.", "ssm."))}
    assert {"ec2:CreatePlacementGroup", "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
            "ec2:AuthorizeSecurityGroupIngress"} <= actions
    missing = sorted(a for a in actions if not any(fnmatchcase(a, pattern) for pattern in allowed))
    assert missing == []


def test_a_spot_interruption_of_one_node_checkpoints_and_stops_the_whole_job(ctx, sandbox, project):
    """Node 1's guardian acts on the spot notice (SIGTERM → checkpoint → upload → terminate); the watch then
    ends the run on node 0, which checkpoints too."""
    import time

    from fleet_helpers import REPO, make_fleet

    from runctl_jupyter.aws import s3
    from runctl_jupyter.sandbox import control

    shutil.copy(REPO / "training" / "train_with_checkpoints.py", project / "train.py")
    for name in make_fleet(ctx, 2, spot=True):
        notes: list[str] = []
        launch = api.fleet_train(ctx, name, project / "train.py", ["--epochs", "300", "--sleep", "0.2"],
                                 project=PROJECT, echo=notes.append)
        # a guardian on every spot node, that also watches the other nodes (told once for all of them)
        assert any(line.startswith("[every node] Guardian watching: spot, fleet peers; ") for line in notes), notes
        node1 = launch.launches[1].instance_id
        checkpoints = disk(sandbox, node1) / "runctl" / PROJECT / "checkpoints"
        deadline = time.monotonic() + 60
        while len(list(checkpoints.glob("checkpoint_epoch_*.json"))) < 2:
            assert time.monotonic() < deadline, "no checkpoints on node 1"
            time.sleep(0.2)
        control.interrupt(control.status(sandbox.directory), node1, notice_seconds=6, terminate_after_seconds=6)
        out: list[str] = []
        result = api.fleet_follow(ctx, launch, out.append, echo=notes.append)
        assert result.state == "stopped" and result.first_failure == 1, result.summary()
        assert result.stopped_after == [0] and result.nodes[0].outcome == "stopped"
        # node 0 checkpointed when its run was ended (by runctl following it, or its own guardian: the first to see)
        assert "received SIGTERM: saved" in "".join(out)
        assert s3.list_objects(ctx, s3.bucket_for(ctx), f"runctl/{PROJECT}/checkpoints/{launch.run_id}/")


def test_a_create_that_fails_leaves_nothing_behind(ctx):
    ec2 = ctx.client("ec2")
    with pytest.raises(Exception) as err:  # an unknown GPU-looking type: the groups were made, then the launch failed
        api.fleet_create(ctx, "broken", "g9.huge", nodes=2, project=PROJECT)
    message = err.value.message
    assert "Instance type g9.huge does not exist" in message and "Fleet broken was not created" in message
    assert "runctl removed its security group sg-" in message and "placement group runctl-fleet-broken" in message
    assert ec2.describe_security_groups(Filters=[{"Name": "tag:runctl:fleet", "Values": ["broken"]}])[
        "SecurityGroups"] == []
    assert ec2.describe_placement_groups(Filters=[{"Name": "tag:runctl:fleet", "Values": ["broken"]}])[
        "PlacementGroups"] == []
    assert live_members(ctx, "broken") == []


def test_the_sandbox_refuses_what_ec2_refuses_for_placement_and_security_groups(ctx):
    from botocore.exceptions import ClientError

    ec2 = ctx.client("ec2")
    with pytest.raises(ClientError, match="InvalidPlacementGroup.Unknown"):
        ec2.describe_placement_groups(GroupNames=["runctl-fleet-nope"])
    ec2.create_placement_group(GroupName="runctl-fleet-pg", Strategy="cluster")
    try:
        with pytest.raises(ClientError, match="InvalidPlacementGroup.Duplicate"):
            ec2.create_placement_group(GroupName="runctl-fleet-pg", Strategy="cluster")
        image = ctx.client("ssm").get_parameter(
            Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")["Parameter"]["Value"]
        with pytest.raises(ClientError, match="InvalidPlacementGroup.Unknown"):
            ec2.run_instances(ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
                              Placement={"GroupName": "runctl-fleet-nope"})
    finally:
        ec2.delete_placement_group(GroupName="runctl-fleet-pg")


def test_budget_caps_of_a_fleet_stop_every_node_and_its_instance_with_nobody_watching(ctx, sandbox, fleet2, project):
    """--max-hours holds for every node; --max-cost is the fleet's total, so each node's guardian gets
    its 1/N share. When the cap is reached every node checkpoints, uploads and stops its instance."""
    import time

    from fleet_helpers import REPO

    shutil.copy(REPO / "training" / "train_with_checkpoints.py", project / "train.py")
    notes: list[str] = []
    launch = api.fleet_train(ctx, fleet2, project / "train.py", ["--epochs", "300", "--sleep", "0.2"],
                             project=PROJECT, max_hours=0.002, max_cost=2.0, echo=notes.append)
    assert notes[-1].endswith("; budget cap $2 for the fleet, $1 per node)"), notes
    assert any(line.startswith("[every node] Guardian watching: max ") and "/$1, fleet peers" in line
               for line in notes), notes
    deadline = time.monotonic() + 90
    while (states := [api.status(ctx, la.instance_id).state for la in launch.launches]) != ["stopped", "stopped"]:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    for la in launch.launches:
        log = (disk(sandbox, la.instance_id) / "runctl" / PROJECT / "runs" / launch.run_id / "log").read_text()
        assert "received SIGTERM: saved checkpoint_epoch_" in log  # it checkpointed before its instance stopped
        assert "[runctl guardian] budget cap: run time reached 7.200s (stopping the instance): checkpoint_epoch_" in log


def test_a_node_whose_instance_goes_without_a_word_ends_the_run_on_the_others(ctx, sandbox, fleet2, project):
    """Node 1's instance is terminated behind runctl's back (the console, a reclaim whose notice was not
    seen): its guardian dies with it and says nothing. Node 0's guardian sees the instance go (a presigned
    DescribeInstances), says so in S3 for it, and stops node 0's training, which checkpoints."""
    import time

    from fleet_helpers import REPO

    from runctl_jupyter.aws import s3
    from runctl_jupyter.remote.replies import GuardianRecord

    shutil.copy(REPO / "training" / "train_with_checkpoints.py", project / "train.py")
    launch = api.fleet_train(ctx, fleet2, project / "train.py", ["--epochs", "300", "--sleep", "0.2"], project=PROJECT)
    node0 = disk(sandbox, launch.launches[0].instance_id) / "runctl" / PROJECT / "runs" / launch.run_id
    deadline = time.monotonic() + 60
    while "epoch 2/300" not in (node0 / "log").read_text():
        assert time.monotonic() < deadline, "node 0 never trained"
        time.sleep(0.2)
    ctx.client("ec2").terminate_instances(InstanceIds=[launch.launches[1].instance_id])
    while (record := GuardianRecord.parse((node0 / "guardian.fields").read_text())).state != "acted":
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    assert (record.action, record.upload) == ("fleet-peer", "ok")  # node 0's newest checkpoint is in S3
    log = (node0 / "log").read_text()
    assert "[runctl guardian] fleet: node 1's instance is going or gone (EC2); said so for it: node-1-instance-gone" in log
    assert "received SIGTERM: saved checkpoint_epoch_" in log
    assert "[runctl guardian] fleet: node 1 (instance-gone) ended the run, so this node's training was stopped" in log
    ends = s3.list_objects(ctx, s3.bucket_for(ctx), f"runctl/{PROJECT}/fleet-ends/{launch.run_id}/")
    assert list(ends) == ["node-1-instance-gone"]
