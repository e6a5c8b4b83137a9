"""The shell front end: result on stdout, progress on stderr; a closed pipe; Ctrl-C detach → 130.

No sandbox: dispatch.run is replaced where a command's value matters, and the pipe tests use
commands that need no AWS (help, a usage error).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runctl_jupyter import cli, dispatch
from runctl_jupyter.training import TrainResult

IID = "i-0123456789abcdef0"


@pytest.fixture()
def fake_run(monkeypatch):
    """Replace dispatch.run with a function that echoes a progress line and returns ``value``."""
    def install(value):
        def run(command, fe):
            fe.echo(f"[sandbox · us-east-1] Created {IID} (t3.micro) — pending")
            return value
        monkeypatch.setattr(dispatch, "run", run)
    return install


def test_progress_goes_to_stderr_and_only_the_result_to_stdout(fake_run, capsys):
    fake_run(IID)
    assert cli.main(["aws", "create", "t3.micro", "--wait"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{IID}\n"  # what `iid=$(runctl aws create t3.micro --wait)` captures
    assert "Created" in err and "Created" not in out


def test_detached_training_exits_130_and_prints_no_result(fake_run, capsys):
    fake_run(TrainResult(IID, "proj", "run-1", "detached"))
    assert cli.main(["aws", "train", IID, "train.py", "--wait"]) == 130
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("state, code", [("running", 0), ("succeeded", 0), ("stopped", 0)])
def test_other_training_results_exit_0_and_print_the_summary(fake_run, capsys, state, code):
    fake_run(TrainResult(IID, "proj", "run-1", state, 0 if state != "running" else None))
    assert cli.main(["aws", "train", IID, "train.py"]) == code
    assert capsys.readouterr().out.startswith(f"Run run-1 on {IID}: {state}")


def test_a_table_with_a_state_column_is_not_mistaken_for_a_detached_run(fake_run, capsys):
    import pandas as pd
    fake_run(pd.DataFrame({"instance_id": [IID], "state": ["detached"]}))
    assert cli.main(["resources", "list"]) == 0
    assert IID in capsys.readouterr().out


def _run_into_closed_pipe(*args: str, stderr_too: bool = False) -> subprocess.CompletedProcess:
    """``runctl ARGS | head -0``, deterministically: the pipe's reader is closed before the start."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "runctl_jupyter.cli", *args], stdout=write_end,
                              stderr=write_end if stderr_too else subprocess.PIPE, timeout=120,
                              env={**os.environ, "RUNCTL_SANDBOX_DIR": os.devnull})
    finally:
        os.close(write_end)


def test_closed_stdout_exits_141_without_a_traceback():
    done = _run_into_closed_pipe("--help")
    assert done.returncode == 141
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr


def test_closed_stdout_and_stderr_exit_141_quietly():
    # `runctl aws status i-zz 2>&1 | head -1`: the usage error itself hits the closed pipe
    done = _run_into_closed_pipe("aws", "status", "i-zz", stderr_too=True)
    assert done.returncode == 141
