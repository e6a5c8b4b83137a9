"""`local train` suggests commands that exist: plain `tail` for the log, no `aws monitor local`."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from runctl_jupyter import dispatch, grammar
from runctl_jupyter.errors import NOTEBOOK_PREFIX, SHELL_PREFIX, TrainingFailed


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RUNCTL_LOCAL_ROOT", str(tmp_path / "local root"))  # a space: hints must quote
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "0.1"\n')
    (folder / "fail.py").write_text("print('boom')\nraise SystemExit(7)\n")
    (folder / "ok.py").write_text("print('epoch 1/1 loss=0.1')\n")
    monkeypatch.chdir(folder)
    return folder


def _run(argv: list[str]):
    lines: list[str] = []
    fe = dispatch.Frontend(prefix=SHELL_PREFIX, echo=lines.append)
    return dispatch.run(grammar.parse(argv), fe), lines


def test_failed_local_run_suggests_reading_its_log_with_tail(project, capsys):
    with pytest.raises(TrainingFailed) as err:
        _run(["local", "train", "fail.py", "--wait"])
    result = err.value.result
    assert result.exit_code == 7 and result.state == "failed"
    for prefix in (SHELL_PREFIX, NOTEBOOK_PREFIX):
        text = err.value.render(prefix)
        assert "aws monitor" not in text and "aws runs" not in text and " local --run" not in text
        assert "tail -n 100 '" in text and "/runs/" in text
        assert "boom" in text  # the log tail is shown
    log = next((project.parent / "local root").glob("runctl/proj/runs/*/log"))
    assert f"tail -n 100 '{log}'" in err.value.render(SHELL_PREFIX)


def test_local_train_without_wait_suggests_plain_tail_f(project):
    result, lines = _run(["local", "train", "ok.py"])
    assert result.state == "running"
    hint = lines[-1]
    assert "tail -f '" in hint and hint.rstrip().endswith("/log'")
    assert "runctl tail" not in hint and "runctl" not in hint.split("tail -f")[0]
    # the suggested command names the run's log, quoted for the shell
    assert Path(shlex.split(hint.split("tail -f", 1)[1])[0]).is_file()


def test_a_second_local_train_while_one_runs_is_refused_and_names_the_first(project):
    import contextlib
    import os
    import signal
    import subprocess
    import time

    from runctl_jupyter.errors import GuardRefused

    (project / "slow.py").write_text("import time\nprint('working', flush=True)\ntime.sleep(60)\n")
    first, _ = _run(["local", "train", "slow.py"])
    run_dir = project.parent / "local root" / "runctl" / "proj" / "runs" / first.run_id
    wrapper = int((run_dir / "pid").read_text().split()[0])
    try:
        with pytest.raises(GuardRefused) as err:
            _run(["local", "train", "ok.py"])
        message = err.value.message
        assert message.startswith("Training already running on this machine (PID: ") and message.endswith(").")
        training_pid = int(message.rsplit("PID: ", 1)[1].rstrip(")."))
        assert os.getpgid(training_pid) == wrapper  # the training's own PID, in its wrapper's group
        shown = err.value.render(SHELL_PREFIX)
        assert f"tail -f '{run_dir / 'log'}'" in shown  # the running one's log, quoted for the shell
        assert len(list(run_dir.parent.iterdir())) == 1  # the refused run left nothing
        # the suggested command works as written, and the run ends with its exit recorded
        stop = next(line for line in shown.splitlines() if "kill -TERM" in line).split(": ", 1)[1]
        assert subprocess.run(["bash", "-c", stop]).returncode == 0
        deadline = time.monotonic() + 20
        while not (run_dir / "exit_code").exists():
            assert time.monotonic() < deadline, "the run did not end after the suggested kill"
            time.sleep(0.1)
        assert (run_dir / "log").read_text().endswith("[runctl] exit code 143\n")  # ended by SIGTERM
    finally:
        with contextlib.suppress(ProcessLookupError):  # already ended by the suggested command
            os.killpg(wrapper, signal.SIGKILL)
