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
