"""The pure parts of fleets: names, placement, the rendezvous environment, the merged manifest, the
[node i] prefixes, what the watch reads from status.sh, and the grammar."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from runctl_jupyter import grammar
from runctl_jupyter.errors import UsageError
from runctl_jupyter.fleet import Fleet, NodeRun, Prefixer, rendezvous_env, wants_cluster_placement
from runctl_jupyter.fleet.follow import FleetResult, apply_status
from runctl_jupyter.fleet.members import check_name, check_nodes
from runctl_jupyter.fleet.network import _members_only
from runctl_jupyter.fleet.sync_once import merged_manifest
from runctl_jupyter.models import Instance
from runctl_jupyter.remote.replies import StatusReply


def _fleet(n: int, itype: str = "t3.micro") -> Fleet:
    nodes = [Instance(instance_id=f"i-{i:017x}", instance_type=itype, state="running", region="us-east-1",
                      private_ip=f"10.0.0.{10 + i}") for i in range(n)]
    return Fleet("f", nodes)


def test_rendezvous_env_without_torchrun_gives_rank_and_world_size():
    fleet = _fleet(3)
    assert rendezvous_env(fleet, 2, 29500, False, None) == {
        "MASTER_ADDR": "10.0.0.10", "MASTER_PORT": "29500", "NODE_RANK": "2", "NNODES": "3",
        "RANK": "2", "WORLD_SIZE": "3", "LOCAL_RANK": "0"}


def test_rendezvous_env_with_torchrun_configures_torchrun_not_the_workers():
    env = rendezvous_env(_fleet(2, "g5.12xlarge"), 1, 29600, True, None)
    assert env["PET_NNODES"] == "2" and env["PET_NODE_RANK"] == "1" and env["PET_MASTER_ADDR"] == "10.0.0.10"
    # processes per node: launch.sh's RUNCTL_TORCHRUN (gpu = nvidia-smi's count there), as for one instance
    assert env["PET_MASTER_PORT"] == "29600" and env["RUNCTL_TORCHRUN"] == "gpu" and "PET_NPROC_PER_NODE" not in env
    assert "RANK" not in env and "WORLD_SIZE" not in env and env["NODE_RANK"] == "1"
    assert rendezvous_env(_fleet(2, "c7i.large"), 0, 29500, True, None)["RUNCTL_TORCHRUN"] == "1"
    assert rendezvous_env(_fleet(2, "c7i.large"), 0, 29500, True, "4")["RUNCTL_TORCHRUN"] == "4"


@pytest.mark.parametrize(("itype", "cluster"), [("p4d.24xlarge", True), ("g5.xlarge", True), ("trn1.32xlarge", True),
                                                 ("t3.micro", False), ("c7g.large", False), ("m5.large", False)])
def test_cluster_placement_for_gpu_and_trainium_families(itype, cluster):
    assert wants_cluster_placement(itype) is cluster


def test_names_and_node_counts_are_checked_before_anything_is_sent():
    assert check_name("ddp-1") == "ddp-1"
    for bad in ("", "-x", "a b", "x" * 41, "ü"):
        with pytest.raises(UsageError):
            check_name(bad)
    with pytest.raises(UsageError):
        check_nodes(51)
    with pytest.raises(UsageError):
        check_nodes(0)


def test_merged_manifest_keeps_only_what_every_node_agrees_on():
    a = {"train.py": "h1", "util.py": "h2", "old.py": "h3"}
    b = {"train.py": "h1", "util.py": "hX"}
    assert merged_manifest([a, b]) == {"old.py": "", "train.py": "h1", "util.py": ""}
    assert merged_manifest([a]) == a
    assert merged_manifest([{}, a])["train.py"] == ""


def test_prefixer_prefixes_whole_lines_only():
    p = Prefixer(2)
    assert p.feed("epo") == ""
    assert p.feed("ch 1/3\nepoch 2") == "[node 2] epoch 1/3\n"
    assert p.feed("/3\n") == "[node 2] epoch 2/3\n"
    assert p.feed("tail") == "" and p.flush() == "[node 2] tail\n" and p.flush() == ""


def test_apply_status_reads_how_a_node_ended():
    run = NodeRun(1, "i-0123456789abcdef0")
    apply_status(run, StatusReply.parse("@runctl state=running log_size=12\n"), 1)
    assert (run.outcome, run.log_size) == ("running", 12)
    apply_status(run, StatusReply.parse("@runctl state=exited exit_code=1 ended=2026-11-30T10:00:01Z\n"), 2)
    assert (run.outcome, run.exit_code, run.seen_at) == ("failed", 1, 2)
    assert run.ended == datetime(2026, 11, 30, 10, 0, 1, tzinfo=UTC)
    stopped = NodeRun(0, "i-0123456789abcdef1")
    apply_status(stopped, StatusReply.parse("@runctl state=exited exit_code=143 stopped=1\n"), 3)
    assert stopped.outcome == "stopped"
    lost = NodeRun(0, "i-0123456789abcdef2")
    apply_status(lost, StatusReply.parse("@runctl state=exited exit_code= lost=1\n"), 3)
    assert lost.outcome == "lost" and lost.exit_code is None


def test_a_security_group_lets_in_members_only():
    own = {"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]}]}
    assert _members_only(own)
    for extra in ({"IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, {"UserIdGroupPairs": [{"GroupId": "sg-2"}]},
                  {"PrefixListIds": [{"PrefixListId": "pl-1"}]}):
        assert not _members_only({"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "tcp", **extra}]})


def test_grammar_fleet_commands():
    c = grammar.parse(["fleet", "train", "ddp", "train.py", "--torchrun", "--nproc-per-node", "gpu", "--wait",
                       "--", "--epochs", "3", "--resume"])
    assert c.path == ("fleet", "train") and c.fleet == "ddp" and c.nproc_per_node == "gpu"
    assert c.script_args == ["--epochs", "3", "--resume"] and c.torchrun and c.wait
    c = grammar.parse(["fleet", "create", "ddp", "g5.xlarge", "--nodes", "4", "--spot", "--wait"])
    assert (c.nodes, c.spot, c.wait, c.instance_type) == (4, True, True, "g5.xlarge")
    with pytest.raises(UsageError) as err:
        grammar.parse(["fleet", "train", "ddp", "train.py", "--epochs", "3"])
    assert "the script's own flags go after `--`" in err.value.message
    assert err.value.steps[0].command == "fleet train ddp train.py -- --epochs 3"
    for bad in (["fleet", "create", "ddp", "t3.micro"], ["fleet", "create", "a b", "t3.micro", "--nodes", "2"],
                ["fleet", "train", "ddp", "t.py", "--nproc-per-node", "0"], ["fleet", "status", "ddp", "--", "x"],
                ["fleet", "train", "ddp", "t.py", "--master-port", "80"]):
        with pytest.raises(UsageError):
            grammar.parse(bad)


def test_a_fleet_that_lost_a_node_or_has_one_stopped_refuses_to_train():
    from runctl_jupyter.errors import GuardRefused
    from runctl_jupyter.fleet.members import require_running
    from runctl_jupyter.tag_keys import FLEET_NODE_TAG

    fleet = _fleet(3)
    for number, inst in enumerate(fleet.nodes):
        inst.tags[FLEET_NODE_TAG] = str(number)
    require_running(fleet, "start training")
    fleet.nodes[1].state = "stopped"
    with pytest.raises(GuardRefused) as err:
        require_running(fleet, "start training")
    assert "node 1 (i-00000000000000001) is stopped" in err.value.message
    assert err.value.steps[0].command == "aws start i-00000000000000001 --wait"
    del fleet.nodes[1]  # terminated: no longer a live member
    with pytest.raises(GuardRefused) as err:
        require_running(fleet, "start training")
    assert "has lost node(s) 1" in err.value.message and fleet.label(2) == "node 2 (i-00000000000000002)"


def test_the_node_that_ended_a_fleet_run_first_is_the_one_its_guardian_named(monkeypatch):
    """Node 1 got a spot notice: its guardian said so in S3 and is still saving when node 0's guardian
    has already stopped node 0. The follower waits for node 1 rather than blame node 0."""
    from runctl_jupyter import guardian
    from runctl_jupyter.fleet import follow

    said: dict[int, str] = {1: "spot-notice"}
    monkeypatch.setattr(guardian, "fleet_ends", lambda _ctx, _project, _run: said)
    fl = SimpleNamespace(project="p", run_id="r")
    node0, node1 = NodeRun(0, "i-0123456789abcdef0"), NodeRun(1, "i-0123456789abcdef1")
    apply_status(node0, StatusReply.parse("@runctl state=exited exit_code=143 stopped=1 ended=2026-11-30T10:00:01Z\n"), 3)
    assert follow._first_end(None, fl, [node0, node1]) is None
    apply_status(node1, StatusReply.parse("@runctl state=exited exit_code=0 stopped=1 ended=2026-11-30T10:00:01Z\n"), 4)
    assert follow._first_end(None, fl, [node0, node1]) is node1
    # nothing said in S3 (no bucket): seen in the same poll, a failure comes before a stop
    said.clear()
    stopped, failed = NodeRun(0, "i-0123456789abcdef0"), NodeRun(1, "i-0123456789abcdef1")
    apply_status(stopped, StatusReply.parse("@runctl state=exited exit_code=143 stopped=1 ended=2026-11-30T10:00:01Z\n"), 2)
    apply_status(failed, StatusReply.parse("@runctl state=exited exit_code=1 ended=2026-11-30T10:00:01Z\n"), 2)
    first = follow._first_end(None, fl, [stopped, failed])
    assert first is failed
    result = FleetResult("f", "p", "r", "failed", [stopped, failed], first.node)
    assert result.stopped_after == [0]
    assert result.summary().splitlines()[0] == ("Fleet run r on f: failed; node 1 (i-0123456789abcdef1) failed "
                                                "(exit code 1) first; then the run was stopped on node 0")


def test_what_every_node_said_is_told_once():
    from runctl_jupyter.fleet.train import told_once

    said = [["Guardian watching: fleet peers", "Started run r on i-0 (PID 5)"],
            ["Guardian watching: fleet peers", "Started run r on i-1 (PID 7)"]]
    assert told_once(said) == ["[every node] Guardian watching: fleet peers", "[node 0] Started run r on i-0 (PID 5)",
                               "[node 1] Started run r on i-1 (PID 7)"]
    assert told_once([["only node"]]) == ["[node 0] only node"]
