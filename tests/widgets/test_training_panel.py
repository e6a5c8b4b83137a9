"""TrainingPanel without a frontend and without AWS: its API calls are injected."""

from __future__ import annotations

import threading

import pytest
from panel_helpers import FakeInstance, FakeLaunch, Recorder, scripted_follow, wait_until

from runctl_jupyter.errors import BackendError, GuardRefused, UsageError, cmd
from runctl_jupyter.training import STOP_SIGNAL_LINE, TrainResult, run_state
from runctl_jupyter.widgets import PanelActions, TrainingPanel, panel_threads, registered

IID = "i-0123456789abcdef0"
EPOCHS = ["starting", "epoch 1/3 loss=0.5 acc=0.7", "epoch 2/3 loss=0.4 acc=0.8", "epoch 3/3 loss=0.3 acc=0.9"]


class FakeTraining:
    def __init__(self, follow=None, price=(0.0104, "t3.micro on-demand, snapshot")) -> None:
        self.rec = Recorder()
        self.follow = follow or scripted_follow(EPOCHS, 0, recorder=self.rec)
        self.start_error: Exception | None = None
        self.stop_error: Exception | None = None
        self.price = price
        self.running_run = None  # what run_info answers: a run started elsewhere, or None

    def actions(self) -> PanelActions:
        return PanelActions(context=lambda cfg: "ctx", start_training=self.start_training,
                            follow_run=self.follow, finish_run=self.finish_run, stop=self.stop,
                            hourly_price=self.hourly_price, run_info=self.run_info)

    def run_info(self, ctx, iid, project=None):
        self.rec.record("run_info", iid, project)
        return self.running_run

    def start_training(self, ctx, iid, script, args, *, project, echo):
        self.rec.record("start_training", iid, script, args, project=project)
        if self.start_error is not None:
            raise self.start_error
        echo(f"Started run on {iid}")
        return FakeLaunch(iid)

    def finish_run(self, ctx, launch, exit_code, tail):
        self.rec.record("finish_run", launch, exit_code, tail)
        return TrainResult(launch.instance_id, "proj", "run-1", run_state(exit_code, tail), exit_code, tail)

    def stop(self, ctx, iid, *, echo):
        self.rec.record("stop", iid)
        if self.stop_error is not None:
            raise self.stop_error
        echo("Asked training run to checkpoint and stop (SIGTERM): ended with exit code 0")
        return FakeInstance(iid, "stopping")

    def hourly_price(self, ctx, iid):
        if isinstance(self.price, Exception):
            raise self.price
        return self.price


def panel_for(fake: FakeTraining, **kw) -> TrainingPanel:
    kw.setdefault("script", "train.py")
    kw.setdefault("args", "--epochs 3 --name 'a b'")
    return TrainingPanel(IID, actions=fake.actions(), **kw)


def finished(panel: TrainingPanel) -> str:
    return wait_until(lambda: not panel.busy and panel.final_state, what="final state")


def test_widgets_and_initial_state():
    panel = panel_for(FakeTraining(), project="demo")
    assert panel.script.value == "train.py" and panel.project.value == "demo"
    assert panel.state_text == "idle"
    assert not panel.start_button.disabled and panel.stop_button.disabled
    assert "runctl-training-panel" in panel._dom_classes
    assert TrainingPanel(IID, args=["--lr", "0.1 0.2"], actions=FakeTraining().actions()).args.value == \
        "--lr '0.1 0.2'"


def test_invalid_instance_id_is_a_usage_error():
    with pytest.raises(UsageError):
        TrainingPanel("i-nothex", actions=FakeTraining().actions())


def test_start_follows_the_log_and_records_success():
    fake = FakeTraining()
    panel = panel_for(fake, project="demo")
    panel.start_button.click()
    assert finished(panel) == "succeeded"
    assert fake.rec.of("start_training") == [((IID, "train.py", ["--epochs", "3", "--name", "a b"]),
                                              {"project": "demo"})]
    assert "epoch 1/3" in panel.log_text and "epoch 3/3" in panel.log_text
    assert "epoch 2/3" in panel.log_html
    assert (panel.progress.value, panel.progress.max) == (3, 3)
    assert panel.progress_label.value == "epoch 3/3"
    (launch, code, tail), _ = fake.rec.of("finish_run")[0]
    assert code == 0 and "epoch 3/3" in tail and launch.instance_id == IID
    assert panel.result.state == "succeeded" and panel.exit_code == 0
    assert "Started run on " + IID in panel.message_text
    assert not panel.start_button.disabled and panel.stop_button.disabled
    wait_until(lambda: "cost so far $" in panel.cost.value and "/hr" in panel.cost.value, what="cost line")
    assert "elapsed 0:00:0" in panel.cost.value


def test_failed_run_shows_its_exit_code():
    fake = FakeTraining(follow=scripted_follow(["epoch 1/3", "Traceback: boom"], 2))
    panel = panel_for(fake)
    panel.start()
    assert finished(panel) == "failed (exit code 2)"
    assert fake.rec.of("finish_run")[0][0][1] == 2
    assert panel.progress.bar_style == "danger"


def test_unknown_price_says_unknown():
    fake = FakeTraining(price=(None, "no price"))
    panel = panel_for(fake)
    panel.start()
    finished(panel)
    wait_until(lambda: "cost so far unknown" in panel.cost.value, what="unknown cost")


def test_price_lookup_error_says_unknown():
    fake = FakeTraining(price=BackendError("Pricing API down."))
    panel = panel_for(fake)
    panel.start()
    finished(panel)
    wait_until(lambda: "cost so far unknown" in panel.cost.value, what="unknown cost")


def test_training_already_running_is_shown_in_the_panel():
    fake = FakeTraining()
    fake.start_error = GuardRefused(f"Training already running on instance {IID} (PID: 123).",
                                    [cmd(f"aws monitor {IID}", "Wait for current training to complete")])
    panel = panel_for(fake)
    panel.start_button.click()
    wait_until(lambda: panel.state_text == "refused" and not panel.busy, what="refused")
    assert f"Error: Training already running on instance {IID} (PID: 123)." in panel.message_text
    assert f"%runctl aws monitor {IID}" in panel.message_text
    assert "Traceback" not in panel.message.value
    assert "follow_run" not in fake.rec.names()
    assert not panel.start_button.disabled


def test_missing_script_and_bad_quotes_are_explained():
    fake = FakeTraining()
    panel = panel_for(fake, script="  ")
    panel.start_button.click()
    assert "Enter the training script's path first." in panel.message_text
    panel.script.value = "train.py"
    panel.args.value = "--name 'unclosed"
    panel.start_button.click()
    assert "Cannot split the script arguments" in panel.message_text
    assert "start_training" not in fake.rec.names()


def test_stop_is_graceful_and_ends_in_stopped():
    release = threading.Event()
    fake = FakeTraining()
    fake.follow = scripted_follow(["epoch 1/3"], None, block=release, recorder=fake.rec)
    panel = panel_for(fake)
    panel.start()
    wait_until(lambda: panel.running and "epoch 1/3" in panel.log_text and not panel.busy, what="running")
    assert panel.start_button.disabled and not panel.stop_button.disabled
    panel.stop_button.click()
    assert finished(panel) == "stopped"
    assert fake.rec.of("stop") == [((IID,), {})]
    assert "finish_run" not in fake.rec.names()      # the stop path tags the run itself
    assert "checkpoint and stop (SIGTERM)" in panel.message_text and f"{IID} is stopping" in panel.message_text
    assert not panel.running
    wait_until(lambda: not panel_threads("training", IID), what="threads end")


def test_a_run_stopped_from_elsewhere_ends_as_stopped_not_succeeded():
    """`%runctl aws stop` in another cell (or the guardian) SIGTERMs the run: it exits 0, but stopped."""
    fake = FakeTraining()
    fake.follow = scripted_follow([*EPOCHS[:2], STOP_SIGNAL_LINE, "[runctl] exit code 0"], 0)
    panel = panel_for(fake)
    panel.start()
    assert finished(panel) == "stopped (exit code 0)"
    assert panel.result.state == "stopped" and panel.progress.bar_style == "warning"


def test_stop_error_is_shown_and_the_run_keeps_going():
    release = threading.Event()
    fake = FakeTraining()
    fake.follow = scripted_follow(["epoch 1/3"], 0, block=release)
    fake.stop_error = BackendError("Not allowed to stop the instance: denied")
    panel = panel_for(fake)
    panel.start()
    wait_until(lambda: panel.running and not panel.busy, what="running")
    panel.stop()
    wait_until(lambda: "Not allowed to stop" in panel.message_text and not panel.busy, what="stop error")
    assert panel.state_text.startswith("running")
    release.set()
    assert finished(panel) == "succeeded"


def test_follow_error_is_shown():
    def broken_follow(ctx, launch, on_text, **kw):
        on_text("epoch 1/3\n")
        raise BackendError("Could not read the log on the instance: gone",
                           [cmd(f"aws status {IID}", "Check the instance")])

    fake = FakeTraining(follow=broken_follow)
    panel = panel_for(fake)
    panel.start()
    wait_until(lambda: panel.state_text.startswith("lost the log") and not panel.busy, what="follow error")
    assert "Could not read the log" in panel.message_text and f"%runctl aws status {IID}" in panel.message_text


def test_recreating_the_panel_stops_the_old_threads_and_reattaches():
    release = threading.Event()
    fake = FakeTraining()
    fake.follow = scripted_follow(["epoch 1/3"], 0, block=release, recorder=fake.rec)
    old = panel_for(fake)
    old.start()
    wait_until(lambda: old.running and not old.busy, what="running")
    new = panel_for(fake)
    assert old.stopped and registered("training", IID) is new
    wait_until(lambda: not old.threads, what="old panel's threads end")
    assert new.running and new.launch is old.launch
    names = sorted(t.name.rsplit("-", 1)[-1] for t in panel_threads("training", IID))
    assert names == ["follow", "ticker"]                # one follower, one ticker: no duplicates
    assert len(fake.rec.of("follow_run")) == 2
    assert "finish_run" not in fake.rec.names()         # the replaced panel records nothing
    release.set()
    assert finished(new) == "succeeded"
    assert len(fake.rec.of("finish_run")) == 1
    assert old.final_state is None


def test_panels_for_different_instances_are_independent():
    fake = FakeTraining()
    a = panel_for(fake)
    b = TrainingPanel("i-0fedcba9876543210", actions=fake.actions())
    assert not a.stopped and not b.stopped


def test_close_stops_the_threads():
    release = threading.Event()
    fake = FakeTraining()
    fake.follow = scripted_follow(["epoch 1/3"], 0, block=release, recorder=fake.rec)
    panel = panel_for(fake)
    panel.start()
    wait_until(lambda: panel.running and not panel.busy, what="running")
    assert len(panel.threads) == 2
    panel.close()
    wait_until(lambda: not panel_threads("training", IID), what="threads end after close")
    assert registered("training", IID) is None
    assert "finish_run" not in fake.rec.names()         # closing detaches; the run goes on
    assert panel.start() is None or not panel.threads   # a closed panel starts nothing


def test_opened_on_a_run_started_elsewhere_it_attaches():
    """`%runctl aws train $iid …` (no panel) then `%runctl panel train $iid`: the panel follows that run."""
    from types import SimpleNamespace

    release = threading.Event()
    fake = FakeTraining()
    fake.follow = scripted_follow(["epoch 7/9 loss=0.1"], None, block=release, recorder=fake.rec)
    fake.running_run = SimpleNamespace(launch=FakeLaunch(IID), state="running", log_size=100_000)
    panel = TrainingPanel(IID, actions=fake.actions())
    wait_until(lambda: panel.running and "epoch 7/9" in panel.log_text, what="attached")
    assert panel.state_text.startswith("running (run ") and panel.attached_elsewhere
    assert panel.start_button.disabled and not panel.stop_button.disabled
    assert "was already running" in panel.message_text
    assert panel.progress_label.value == "epoch 7/9"
    wait_until(lambda: "elapsed since attached" in panel.cost.value, what="cost line")
    panel.stop_button.click()
    assert finished(panel) == "stopped"
    assert fake.rec.of("stop") == [((IID,), {})]


def test_no_run_elsewhere_leaves_it_idle():
    fake = FakeTraining()
    panel = panel_for(fake)
    wait_until(lambda: fake.rec.of("run_info"), what="the check")
    assert panel.state_text == "idle" and not panel.start_button.disabled and panel.launch is None


def test_the_log_grows_by_blocks_that_are_never_redrawn():
    """What the reader scrolled to is not re-rendered: earlier blocks keep their widget and HTML."""
    from runctl_jupyter.widgets.training_panel import CHUNK_LINES

    fake = FakeTraining(follow=scripted_follow([f"line {i}" for i in range(CHUNK_LINES + 10)], 0))
    panel = panel_for(fake)
    panel.start()
    finished(panel)
    first, first_html = panel.log_blocks.children[0], panel.log_blocks.children[0].value
    assert len(panel.log_blocks.children) == 2 and "line 0\n" in first_html and f"line {CHUNK_LINES}" not in first_html
    panel._on_text("more\n")
    assert panel.log_blocks.children[0] is first and first.value == first_html
    assert "more" in panel.log_blocks.children[-1].value
    assert panel.log_view.layout.flex_flow == "column-reverse"  # the browser keeps the newest line in view
