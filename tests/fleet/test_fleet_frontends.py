"""The fleet commands through the shell (`runctl --sandbox fleet …`) and the `%runctl` magic."""

from __future__ import annotations

import pytest
from fleet_helpers import run_cli

from runctl_jupyter import api
from runctl_jupyter.errors import TrainingFailed

pytestmark = pytest.mark.sandbox


def test_shell_create_train_monitor_status_terminate(sandbox, ctx, project):
    created = run_cli("--sandbox", "fleet", "create", "clifleet", "t3.micro", "--nodes", "2", "--wait",
                      "--project", "fleetproj", cwd=project)
    assert created.returncode == 0, created.stderr
    try:
        assert "Created fleet clifleet: 2 × t3.micro" in created.stderr and "all 2 nodes are running" in created.stderr
        assert created.stdout.startswith("Fleet clifleet: 2 × t3.micro")
        trained = run_cli("--sandbox", "fleet", "train", "clifleet", "rendezvous.py", "--wait", "--all-nodes",
                          cwd=project)
        assert trained.returncode == 0, trained.stderr
        assert "[node 0] ranks [0, 1]" in trained.stdout and "[node 1] ranks [0, 1]" in trained.stdout
        assert "Started run" in trained.stderr and "one bundle fetched by all 2 nodes" in trained.stderr
        failed = run_cli("--sandbox", "fleet", "train", "clifleet", "rendezvous.py", "--wait", "--",
                         "--fail-rank", "1", "--timeout", "300", cwd=project)
        assert failed.returncode == 5, failed.stderr
        assert "Error: Fleet run" in failed.stderr and "node 1 (i-" in failed.stderr
        assert "failed (exit code 1) first; then the run was stopped on node 0." in failed.stderr
        assert "To resolve:" in failed.stderr and "runctl fleet monitor clifleet --all-nodes" in failed.stderr
        monitor = run_cli("--sandbox", "fleet", "monitor", "clifleet", "--all-nodes", cwd=project)
        assert monitor.returncode == 0, monitor.stderr
        assert ": stopped" in monitor.stderr and ": exited (exit code 1)" in monitor.stderr
        assert "[node 1] rank 1: failing on purpose" in monitor.stdout
        status = run_cli("--sandbox", "fleet", "status", "clifleet", cwd=project)
        assert status.returncode == 0 and status.stdout.count("running") >= 2
    finally:
        ended = run_cli("--sandbox", "fleet", "terminate", "clifleet", "--force", cwd=project)
    assert ended.returncode == 0, ended.stderr
    assert "Fleet clifleet is terminated" in ended.stderr and "Removed fleet clifleet's security group" in ended.stderr
    missing = run_cli("--sandbox", "fleet", "status", "clifleet", cwd=project)
    assert missing.returncode == 2 and "No fleet named clifleet" in missing.stderr


def test_magic_returns_values_and_raises_on_a_failed_node(shell, ctx, project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    fleet = shell.run_line_magic("runctl", "fleet create magicfleet t3.micro --nodes 2 --wait --project fleetproj")
    try:
        assert isinstance(fleet, api.Fleet) and len(fleet.nodes) == 2
        result = shell.run_line_magic("runctl", "fleet train magicfleet rendezvous.py --wait")
        assert isinstance(result, api.FleetResult) and result.state == "succeeded"
        assert "ranks [0, 1]" in capsys.readouterr().out
        with pytest.raises(TrainingFailed) as err:
            shell.run_line_magic("runctl", "fleet train magicfleet rendezvous.py --wait -- --fail-rank 0")
        assert "%runctl fleet monitor magicfleet --all-nodes" in "\n".join(err.value._render_traceback_())
        frame = shell.run_line_magic("runctl", "fleet status magicfleet")
        assert list(frame["node"]) == [0, 1] and frame.attrs["runctl_kind"] == "fleet"
        assert "(members only)" in frame.attrs["runctl_caption"]
    finally:
        shell.run_line_magic("runctl", "fleet terminate magicfleet --force")


def test_a_notebook_watches_a_fleet_run_started_without_wait(shell, ctx, project, monkeypatch):
    """Without --wait a notebook cell returns at once, shows node 0's log and keeps watching every node:
    a node that fails ends the run on the others although nobody waits in the cell."""
    from runctl_jupyter import fleet_view

    monkeypatch.chdir(project)
    shell.run_line_magic("runctl", "fleet create watchfleet t3.micro --nodes 2 --wait --project fleetproj")
    try:
        launch = shell.run_line_magic("runctl", "fleet train watchfleet rendezvous.py -- --fail-rank 1 --timeout 300")
        assert isinstance(launch, api.FleetLaunch)
        follower = fleet_view._FOLLOWERS["watchfleet"]
        assert follower.fleet_launch is launch
        follower.thread.join(timeout=240)
        assert not follower.thread.is_alive(), "the watch never ended"
        result = follower.fleet_result
        assert result is not None, follower.lines
        assert result.state == "failed" and result.first_failure == 1 and result.stopped_after == [0]
        assert any("rank 0" in line for line in follower.lines)  # node 0's log, in the cell
        assert all(node.state != "running" for node in result.nodes)
    finally:
        shell.run_line_magic("runctl", "fleet terminate watchfleet --force")
