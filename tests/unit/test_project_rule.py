"""One rule for the project a command uses (issue 17 item 4): `train`, `monitor`/`runs`/`checkpoints`,
`create` and `config show` used to decide it three different ways (the monitor side took the current
folder's bare name, so a notebook in my-proj/notebooks/ read project "notebooks")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runctl_jupyter import api, training
from runctl_jupyter.config import Settings
from runctl_jupyter.errors import UsageError
from runctl_jupyter.sync_scope import choose_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "My Project (v2)"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (root / "train.py").write_text("print(1)\n")
    monkeypatch.chdir(root / "notebooks")  # where a user's notebook runs
    return root


def _ctx(project_setting: str | None = None):
    return SimpleNamespace(settings=Settings(project=project_setting))


def test_the_order_is_flag_setting_instance_folder(project):
    script = project / "train.py"
    assert choose_project("flag", "setting", "tagged", script) == "flag"
    assert choose_project(None, "setting", "tagged", script) == "setting"
    assert choose_project(None, None, "tagged", script) == "tagged"
    assert choose_project(None, None, None, script) == "My-Project-v2"  # the project folder, made a valid name


@pytest.mark.parametrize("setting, tagged", [(None, None), ("configured", None), (None, "tagged"),
                                             ("configured", "tagged")])
def test_train_and_the_commands_that_read_its_runs_agree(project, setting, tagged):
    ctx = _ctx(setting)
    inst = SimpleNamespace(project=tagged)
    trained = training.runs.project_name(ctx, project / "train.py", None, tagged)
    read = training.project_for_instance(ctx, inst, None)  # monitor / runs / checkpoints / stop
    assert trained == read
    if tagged is None:  # an instance `create` made here is tagged with the same project
        assert api.default_project(ctx) == trained


def test_a_bad_name_is_refused_with_steps(project):
    with pytest.raises(UsageError) as err:
        choose_project("../etc", None, None, project / "train.py")
    assert "../etc" in err.value.message and err.value.steps
