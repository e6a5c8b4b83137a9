"""ResourcesPanel without a frontend and without AWS: its API calls are injected."""

from __future__ import annotations

import threading

import pytest
from panel_helpers import FakeInstance, Recorder, visible, wait_until

from runctl_jupyter.costs import frame
from runctl_jupyter.errors import BackendError, GuardRefused, UsageError, cmd
from runctl_jupyter.widgets import PanelActions, ResourcesPanel, panel_threads, registered

A, B = "i-0123456789abcdef0", "i-0fedcba9876543210"


def rows(state_b: str = "stopped") -> list[dict]:
    return [
        {"instance_id": A, "instance_type": "t3.micro", "state": "running", "project": "demo",
         "region": "us-east-1", "usd_per_hour": 0.0104, "accrued_usd": 1.25},
        {"instance_id": B, "instance_type": "g5.xlarge", "state": state_b, "project": "demo",
         "region": "us-east-1", "usd_per_hour": 1.006, "accrued_usd": 3.5},
    ]


def guard_error(iid: str) -> GuardRefused:
    return GuardRefused(
        "Termination blocked: instance has checkpoints. Use --force to override or use 'stop' instead.",
        [cmd(f"aws stop {iid}", "Stop instead"), cmd(f"aws terminate {iid} --force", "Or terminate anyway")],
        details=[f"⚠️  WARNING: Instance {iid} has checkpoints that will be lost on termination.",
                 "   Checkpoint: runctl/demo/checkpoints/checkpoint_epoch_2.json"])


class FakeWorld:
    """Fake API: a listing, and start/stop/terminate that record their calls."""

    def __init__(self) -> None:
        self.rec = Recorder()
        self.state_b = "stopped"
        self.list_error: Exception | None = None
        self.guard = True
        self.gate: threading.Event | None = None

    def actions(self) -> PanelActions:
        return PanelActions(context=lambda cfg: "ctx", list_frame=self.list_frame, start=self.start,
                            stop=self.stop, terminate=self.terminate)

    def list_frame(self, ctx, **filters):
        self.rec.record("list_frame", ctx, **filters)
        if self.list_error is not None:
            raise self.list_error
        df = frame(rows(self.state_b))
        if filters.get("state"):
            df = df[df["state"] == filters["state"]]
        return df

    def start(self, ctx, iid, *, echo):
        self.rec.record("start", iid)
        echo(f"Starting {iid}")
        return FakeInstance(iid, "pending")

    def stop(self, ctx, iid, *, echo):
        self.rec.record("stop", iid)
        if self.gate is not None:
            assert self.gate.wait(10)
        echo(f"Stopping {iid}")
        self.state_b = "stopping"
        return FakeInstance(iid, "stopping")

    def terminate(self, ctx, iid, *, force, echo):
        self.rec.record("terminate", iid, force=force)
        if self.guard and not force:
            raise guard_error(iid)
        return FakeInstance(iid, "shutting-down")


@pytest.fixture()
def world() -> FakeWorld:
    return FakeWorld()


def loaded(panel: ResourcesPanel, count: int = 1) -> ResourcesPanel:
    wait_until(lambda: panel.refresh_count >= count and not panel.busy, what=f"refresh #{count}")
    return panel


def test_first_refresh_fills_table_status_and_instance_list(world):
    panel = loaded(ResourcesPanel(actions=world.actions()))
    assert "runctl-resources" in panel.table.value and A in panel.table.value
    status = panel.status.value
    assert "1 running" in status and "$0.0104/hr" in status and "$4.75 accrued" in status
    assert "last refresh" in status
    assert [v for _, v in panel.instance.options] == [A, B]
    assert panel.instance.value == A
    assert panel.children  # a VBox: displayable as is
    assert "runctl-resources-panel" in panel._dom_classes


def test_filters_are_passed_to_list_frame(world):
    panel = loaded(ResourcesPanel(actions=world.actions(), state="running", region="us-east-1, eu-west-1",
                                  project="demo"))
    _, kwargs = world.rec.of("list_frame")[-1]
    assert kwargs == {"state": "running", "project": "demo", "regions": "us-east-1, eu-west-1"}
    assert [v for _, v in panel.instance.options] == [A]
    panel.state_filter.value = "all"   # a filter change refreshes
    loaded(panel, 2)
    assert world.rec.of("list_frame")[-1][1]["state"] is None


def test_refresh_button(world):
    panel = loaded(ResourcesPanel(actions=world.actions()))
    panel.refresh_button.click()
    loaded(panel, 2)


def test_stop_needs_confirmation_then_runs_and_refreshes(world):
    panel = loaded(ResourcesPanel(actions=world.actions()))
    panel.instance.value = B
    panel.stop_button.click()
    assert visible(panel.confirm_box) and B in panel.confirm_text.value
    assert panel.pending == ("stop", B)
    assert "stop" not in world.rec.names()        # nothing happens before Confirm
    panel.cancel_button.click()
    assert not visible(panel.confirm_box) and panel.pending is None
    assert "stop" not in world.rec.names()
    panel.stop_button.click()
    panel.confirm_button.click()
    wait_until(lambda: panel.refresh_count >= 2 and not panel.busy, what="stop + refresh")
    assert world.rec.of("stop") == [((B,), {})]
    assert "Stopping " + B in panel.message_text and "is now stopping" in panel.message_text
    assert "stopping" in panel.table.value
    assert not visible(panel.confirm_box)


def test_start_needs_confirmation(world):
    panel = loaded(ResourcesPanel(actions=world.actions()))
    panel.instance.value = B
    panel.start_button.click()
    assert "start" not in world.rec.names()
    panel.confirm_button.click()
    wait_until(lambda: world.rec.of("start") and not panel.busy, what="start")
    assert world.rec.of("start") == [((B,), {})]


def test_buttons_disabled_while_an_action_runs(world):
    world.gate = threading.Event()
    panel = loaded(ResourcesPanel(actions=world.actions()))
    panel.stop_button.click()
    panel.confirm_button.click()
    wait_until(lambda: world.rec.of("stop"), what="stop called")
    assert panel.busy
    assert all(b.disabled for b in (panel.start_button, panel.stop_button, panel.terminate_button))
    panel.terminate_button.click()
    panel.confirm_button.click()          # ignored while busy
    world.gate.set()
    wait_until(lambda: not panel.busy, what="action finished")
    assert not any(b.disabled for b in (panel.start_button, panel.stop_button, panel.terminate_button))
    assert "terminate" not in world.rec.names()


def test_terminate_guard_shows_message_and_force_button(world):
    panel = loaded(ResourcesPanel(actions=world.actions()))
    assert not visible(panel.force_box)
    panel.terminate_button.click()
    assert "terminate" not in world.rec.names()
    panel.confirm_button.click()
    wait_until(lambda: visible(panel.force_box), what="force button")
    assert world.rec.of("terminate") == [((A,), {"force": False})]
    text = panel.message_text
    assert "WARNING: Instance " + A in text               # the guard's details
    assert "Error: Termination blocked" in text            # its message
    assert f"%runctl aws stop {A}" in text                 # its steps, with the notebook prefix
    assert "runctl-guard" in panel.message.value
    assert "Traceback" not in panel.message.value
    panel.force_button.click()
    wait_until(lambda: len(world.rec.of("terminate")) == 2 and not panel.busy, what="force terminate")
    assert world.rec.of("terminate")[1] == ((A,), {"force": True})
    assert not visible(panel.force_box)
    assert "is now shutting-down" in panel.message_text


def test_terminate_without_guard_proceeds(world):
    world.guard = False
    panel = loaded(ResourcesPanel(actions=world.actions()))
    panel.terminate_button.click()
    panel.confirm_button.click()
    wait_until(lambda: world.rec.of("terminate") and not panel.busy, what="terminate")
    assert not visible(panel.force_box)
    assert "shutting-down" in panel.message_text


def test_errors_are_rendered_in_the_panel(world):
    world.list_error = BackendError("Could not reach the AWS endpoint.", [cmd("sandbox start", "Start it")])
    panel = ResourcesPanel(actions=world.actions())
    wait_until(lambda: "runctl-error" in panel.message.value, what="error shown")
    assert "Error: Could not reach the AWS endpoint." in panel.message_text
    assert "1. Start it: %runctl sandbox start" in panel.message_text
    assert "refresh failed" in panel.status.value
    assert "Traceback" not in panel.message.value


def test_unexpected_exceptions_are_text_too(world):
    world.list_error = RuntimeError("boom")
    panel = ResourcesPanel(actions=world.actions())
    wait_until(lambda: "runctl-error" in panel.message.value, what="error shown")
    assert panel.message_text == "Error: RuntimeError: boom"


def test_context_error_is_shown_not_raised(world):
    def bad_context(cfg):
        raise UsageError("Unknown setting 'regon'.", [cmd("config show", "See the settings")])

    actions = world.actions()
    actions.context = bad_context
    panel = ResourcesPanel(actions=actions, magic_config={"regon": "x"})
    assert "Unknown setting 'regon'." in panel.message_text
    assert "list_frame" not in world.rec.names()


def test_magic_config_goes_to_the_context(world):
    seen = []
    actions = world.actions()
    actions.context = lambda cfg: seen.append(cfg) or "ctx"
    loaded(ResourcesPanel(actions=actions, magic_config={"region": "eu-west-1"}))
    assert seen == [{"region": "eu-west-1"}]


def test_auto_refresh_runs_in_the_background(world):
    panel = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    assert panel.refresh_seconds == 1
    loaded(panel, 3)       # the first refresh, then two timed ones
    panel.refresh_seconds = 0
    wait_until(lambda: not [t for t in panel.threads if t.name.endswith("auto-refresh")],
               what="auto-refresh thread ends when turned off")


def test_recreating_the_panel_leaves_one_set_of_threads(world):
    first = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    loaded(first)
    second = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    third = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    assert first.stopped and second.stopped and not third.stopped
    assert registered("resources", "all") is third
    wait_until(lambda: len([t for t in panel_threads("resources") if t.name.endswith("auto-refresh")]) == 1,
               what="a single auto-refresh thread")
    count = first.refresh_count
    loaded(third, 2)
    assert first.refresh_count == count     # the replaced panel no longer refreshes


def test_close_stops_the_threads(world):
    panel = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    loaded(panel)
    assert panel.threads
    panel.close()
    assert panel.stopped and registered("resources", "all") is None
    wait_until(lambda: not panel_threads("resources"), what="threads gone after close")
    assert panel.comm is None


def test_front_end_closing_the_comm_stops_the_threads(world):
    panel = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    loaded(panel)
    panel.comm = None          # what happens when the widget's comm goes away
    assert panel.stopped
    wait_until(lambda: not panel_threads("resources"), what="threads gone")


def test_comm_close_message_from_the_front_end_stops_the_threads(world):
    panel = ResourcesPanel(refresh_seconds=1, actions=world.actions())
    loaded(panel)
    panel.comm.handle_close({"content": {"data": {}}})   # the front end closed the widget's comm
    assert panel.stopped and registered("resources", "all") is None
    wait_until(lambda: not panel_threads("resources"), what="threads gone")


def test_after_stop_it_refreshes_until_the_instance_has_stopped(world: FakeWorld) -> None:
    """No more "stopping" until someone presses Refresh: the panel looks again, backing off, until stable."""
    listed = {"n": 0}
    plain_list = world.list_frame

    def list_frame(ctx, **filters):
        listed["n"] += 1
        if world.state_b == "stopping" and listed["n"] >= 4:  # EC2 takes a while
            world.state_b = "stopped"
        return plain_list(ctx, **filters)

    world.state_b = "running"
    world.list_frame = list_frame  # type: ignore[method-assign]
    panel = ResourcesPanel(actions=world.actions(), settle_delays=(0.05, 0.1, 0.2, 0.4, 0.8))
    wait_until(lambda: panel.refresh_count >= 1 and not panel.busy, what="first refresh")
    panel.ask("stop", B)
    panel.confirm()
    wait_until(lambda: "stopping" in panel.table.value or "stopped" in panel.table.value, what="stopping")
    wait_until(lambda: not panel.settling and f"{B} · stopped" in str(panel.instance.options), what="settled")
    assert "stopping" not in panel.table.value and panel.unsettled(panel.frame) == []
    assert "settle" not in panel.status.value


def test_settling_is_bounded(world: FakeWorld) -> None:
    world.state_b = "pending"  # never settles
    panel = ResourcesPanel(actions=world.actions(), settle_delays=(0.01, 0.01, 0.01))
    wait_until(lambda: panel.refresh_count >= 1, what="first refresh")
    wait_until(lambda: not panel.settling and panel.refresh_count == 4, what="three more refreshes, then stop")
    assert "still changing state: press Refresh" in panel.status.value
    assert not [t for t in panel_threads("resources") if t.name.endswith("-settle")]


def test_warnings_and_cost_first_the_rest_behind_a_toggle(world: FakeWorld) -> None:
    import re

    panel = ResourcesPanel(actions=world.actions())
    wait_until(lambda: panel.refresh_count >= 1, what="first refresh")
    heads = re.findall(r'class="col_heading level0 col\d+" >([^<]*)</th>', panel.table.value)
    assert heads[:8] == ["instance_id", "name", "instance_type", "gpu", "state", "warnings", "usd_per_hour", "accrued_usd"]
    assert "price_source" not in heads and len(heads) == 12
    assert 'style="white-space: nowrap;"' in panel.table.value  # IDs do not wrap
    panel.all_columns.value = True
    heads = re.findall(r'class="col_heading level0 col\d+" >([^<]*)</th>', panel.table.value)
    assert "price_source" in heads and len(heads) == len(panel.frame.columns)
