"""Training on an instance, by concern: :mod:`.launch` (claim → sync → launch), :mod:`.follow` (the log,
the status, the end of a run), :mod:`.stopping` (what stop does for a training), :mod:`.listings`
(checkpoints and runs as DataFrames), :mod:`.runs` (the values they share).

Backend only: nothing here prints or displays; front ends reach it through :mod:`runctl_jupyter.api`.
"""

from .follow import finish_run, follow_run, read_status, tail_fetcher, wait_for_exit
from .launch import LAUNCH_TIMEOUT_S, start_training
from .listings import checkpoints_frame, runs_frame
from .runs import (
    STOP_SIGNAL_LINE,
    Echo,
    Fetch,
    InstanceEnded,
    Launch,
    TrainResult,
    failure,
    project_for_instance,
    run_state,
)
from .stopping import before_stop, end_spot_instance, record_stop

__all__ = [
    "LAUNCH_TIMEOUT_S", "STOP_SIGNAL_LINE", "Echo", "Fetch", "InstanceEnded", "Launch",
    "TrainResult", "before_stop", "checkpoints_frame", "end_spot_instance", "failure", "finish_run", "follow_run",
    "project_for_instance", "record_stop", "read_status", "run_state", "runs_frame", "start_training",
    "tail_fetcher", "wait_for_exit",
]
