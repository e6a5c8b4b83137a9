"""The panels against the embedded sandbox: the real API underneath, no frontend, no AWS."""

from __future__ import annotations

import pytest
from panel_helpers import visible, wait_until

from runctl_jupyter import api
from runctl_jupyter.widgets import ResourcesPanel, TrainingPanel

pytestmark = pytest.mark.sandbox
PROJECT = "panels"


@pytest.fixture()
def instance(ctx):
    inst = api.create(ctx, "t3.micro", wait=True, project=PROJECT)
    yield inst.instance_id
    try:
        api.terminate(ctx, inst.instance_id, force=True)
    except Exception as exc:  # the test may have terminated it already; say why cleanup failed
        print(f"cleanup of {inst.instance_id}: {exc}")


def listed(panel: ResourcesPanel, iid: str, state: str | None = None, timeout: float = 60) -> None:
    def ok() -> bool:
        df = panel.frame
        if df is None or iid not in set(df["instance_id"]):
            panel.refresh(wait=True)
            return False
        return state is None or df.loc[df["instance_id"] == iid, "state"].iloc[0] == state

    wait_until(ok, timeout=timeout, interval=0.3, what=f"{iid} listed{' as ' + state if state else ''}")


def train(ctx, iid: str, train_project, args: str = "--epochs 2 --sleep 0") -> TrainingPanel:
    panel = TrainingPanel(iid, ctx=ctx, script=str(train_project / "train_with_checkpoints.py"), args=args,
                          project=PROJECT)
    panel.start_button.click()
    return panel


def test_resources_panel_lists_and_stops_with_confirmation(ctx, instance):
    panel = ResourcesPanel(ctx=ctx, project=PROJECT)
    listed(panel, instance, "running")
    assert instance in panel.table.value and "sandbox" in panel.table.value
    assert "1 running" in panel.status.value or "running" in panel.status.value
    panel.instance.value = instance
    panel.stop_button.click()
    assert api.status(ctx, instance).state == "running"     # nothing before Confirm
    panel.confirm_button.click()
    wait_until(lambda: not panel.busy and panel.refresh_count >= 2, timeout=90, what="stop finished")
    assert "runctl-error" not in panel.message.value, panel.message_text
    assert api.status(ctx, instance).state in ("stopping", "stopped")
    df = panel.frame
    assert df.loc[df["instance_id"] == instance, "state"].iloc[0] in ("stopping", "stopped")
    assert "Stopping " + instance in panel.message_text


def test_training_panel_runs_then_terminate_is_guarded(ctx, instance, train_project):
    trainer = train(ctx, instance, train_project)
    wait_until(lambda: not trainer.busy and trainer.final_state, timeout=120, what="training ends")
    assert trainer.final_state == "succeeded", trainer.message_text
    assert "epoch 1/2" in trainer.log_text and "epoch 2/2" in trainer.log_text
    assert (trainer.progress.value, trainer.progress.max) == (2, 2)
    wait_until(lambda: "cost so far $" in trainer.cost.value, what="cost")
    assert api.status(ctx, instance).tags.get("runctl:run-state") == "exit 0"

    panel = ResourcesPanel(ctx=ctx, project=PROJECT)
    listed(panel, instance)
    panel.instance.value = instance
    panel.terminate_button.click()
    panel.confirm_button.click()
    wait_until(lambda: not panel.busy and (visible(panel.force_box) or panel.message_text),
               timeout=90, what="guard answer")
    assert visible(panel.force_box), panel.message_text
    assert "Termination blocked" in panel.message_text
    assert "checkpoint_epoch_" in panel.message_text
    assert f"%runctl aws stop {instance}" in panel.message_text
    assert api.status(ctx, instance).state == "running"      # the guard changed nothing
    panel.force_button.click()
    wait_until(lambda: not panel.busy and not visible(panel.force_box), timeout=90, what="force terminate")
    assert api.status(ctx, instance).state in ("shutting-down", "terminated")


def test_training_panel_stop_checkpoints_and_stops(ctx, instance, train_project):
    trainer = train(ctx, instance, train_project, args="--epochs 200 --sleep 0.2")
    wait_until(lambda: "epoch 2/200" in trainer.log_text, timeout=120, what="training runs")
    trainer.stop_button.click()
    wait_until(lambda: not trainer.busy and trainer.final_state, timeout=120, what="stopped")
    assert trainer.final_state == "stopped", trainer.message_text
    assert "SIGTERM" in trainer.message_text
    assert api.status(ctx, instance).state in ("stopping", "stopped")


def test_second_start_is_refused_while_a_run_is_going(ctx, instance, train_project):
    first = train(ctx, instance, train_project, args="--epochs 200 --sleep 0.2")
    wait_until(lambda: "epoch 1/200" in first.log_text, timeout=120, what="training runs")
    first.stop_threads()  # detach (the run goes on) so a second panel can try
    second = train(ctx, instance, train_project)
    wait_until(lambda: not second.busy and second.state_text == "refused", timeout=90, what="refused")
    assert "Training already running" in second.message_text
