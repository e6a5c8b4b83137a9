"""Code sync on the sandbox: the right folder, fresh code, nothing secret."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sandbox_env import make_project

from runctl_jupyter import training
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import UsageError


def _run(ctx, iid: str, script: Path, *args: str, **kw) -> str:
    launch = training.start_training(ctx, iid, script, list(args), **kw)
    chunks: list[str] = []
    result = training.follow_run(ctx, launch, chunks.append)
    assert result.exit_code == 0, "".join(chunks)
    return "".join(chunks)


def test_a_script_in_the_home_folder_syncs_nothing(ctx, instance, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = SECRET\n")
    (home / "train.py").write_text("print('hi')\n")
    monkeypatch.setenv("HOME", str(home))
    before = s3.list_objects(ctx, s3.bucket_for(ctx), "runctl/")
    with pytest.raises(UsageError) as err:
        training.start_training(ctx, instance, home / "train.py", [], project="homeless")
    assert err.value.message.startswith(f"Refusing to sync {home}: it is a home or system folder")
    assert s3.list_objects(ctx, "runctl-sandbox", "runctl/") == before


def test_a_same_size_edit_runs_the_new_code(ctx, instance, tmp_path):
    """Synced files used to get mtime 1970-01-01: Python kept the old .pyc of a same-size edit."""
    script = make_project(tmp_path / "fresh", "fresh")
    (script.parent / "settings.py").write_text("X = 1\n")
    script.write_text("import settings\nprint('X is', settings.X)\n")
    assert "X is 1" in _run(ctx, instance, script, project="fresh")
    (script.parent / "settings.py").write_text("X = 2\n")  # the same size
    assert "X is 2" in _run(ctx, instance, script, project="fresh")


def test_secrets_stay_home_and_the_user_is_told_once(ctx, instance, tmp_path):
    script = make_project(tmp_path / "secretive", "secretive")
    (script.parent / ".env").write_text("WANDB_API_KEY=secret\n")
    (script.parent / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    said: list[str] = []
    launch = training.start_training(ctx, instance, script, ["--epochs", "1", "--sleep", "0"], project="secretive",
                                     echo=said.append)
    training.follow_run(ctx, launch, lambda _t: None)
    left_out = [line for line in said if line.startswith("Code sync left out")]
    assert len(left_out) == 1 and ".env" in left_out[0] and "deploy.pem: a private key" in left_out[0]
    bundles = s3.list_objects(ctx, "runctl-sandbox", "runctl/secretive/code/").values()
    sent = b"".join(gzip.decompress(s3.get_bytes(ctx, "runctl-sandbox", o.key)) for o in bundles)
    assert b"train_with_checkpoints" in sent or b"def main" in sent  # the bundle was read
    assert b"WANDB_API_KEY" not in sent and b"PRIVATE KEY" not in sent


def test_a_bundle_over_the_limit_is_refused_naming_the_largest_files(ctx, instance, tmp_path):
    script = make_project(tmp_path / "heavy", "heavy")
    (script.parent / "data.bin").write_bytes(b"\0" * 3_000_000)
    ctx.settings.sync_max_mb = 1
    with pytest.raises(UsageError) as err:
        training.start_training(ctx, instance, script, [], project="heavy")
    assert err.value.message.startswith("The code to sync from")
    rendered = err.value.render()
    assert "data.bin (3.0 MB)" in rendered and ".runctlignore" in rendered and "config set sync_max_mb 4" in rendered


def test_no_presigned_url_reaches_the_trainings_environment_or_log(ctx, instance, tmp_path):
    script = make_project(tmp_path / "envdump", "envdump")
    script.write_text("import os\nfor k, v in sorted(os.environ.items()):\n    print(f'{k}={v}')\n")
    log = _run(ctx, instance, script, project="envdump")
    assert "RUNCTL_RUN_ID=" in log and "RUNCTL_CHECKPOINT_DIR=" in log
    assert "X-Amz-" not in log and "RUNCTL_SYNC_URL" not in log and "RUNCTL_SCRIPTS_DIR" not in log


def test_a_file_the_training_rewrote_is_kept_when_it_is_deleted_locally(ctx, instance, tmp_path, sandbox):
    script = make_project(tmp_path / "keeper", "keeper")
    (script.parent / "outputs").mkdir()
    (script.parent / "outputs" / "best.pt").write_text("placeholder\n")
    (script.parent / "outputs" / "old.txt").write_text("obsolete\n")
    script.write_text("from pathlib import Path\nPath('outputs/best.pt').write_text('trained weights\\n')\n")
    _run(ctx, instance, script, project="keeper")
    (script.parent / "outputs" / "best.pt").unlink()
    (script.parent / "outputs" / "old.txt").unlink()
    script.write_text("print('second run')\n")
    said: list[str] = []
    _run(ctx, instance, script, project="keeper", echo=said.append)
    code = Path(sandbox.directory) / "instances" / instance / "runctl" / "keeper" / "code"
    assert (code / "outputs" / "best.pt").read_text() == "trained weights\n"  # the training's work stays
    assert not (code / "outputs" / "old.txt").exists()  # runctl's own, unchanged copy goes
    assert any(line.startswith(f"Kept 1 file(s) on {instance}") and "outputs%2Fbest.pt" not in line
               and "outputs/best.pt" in line for line in said), said


def test_a_file_changed_on_the_instance_is_seen_and_sent_again(ctx, instance, tmp_path, sandbox):
    """A run rewrote config.yaml; the next train used to send 0 files and run the instance's version."""
    script = make_project(tmp_path / "drift", "drift")
    (script.parent / "config.yaml").write_text("lr: 0.1\n")
    script.write_text("from pathlib import Path\nprint('config', Path('config.yaml').read_text().strip())\n"
                      "Path('config.yaml').write_text('lr: 999\\n')\n")
    assert "config lr: 0.1" in _run(ctx, instance, script, project="drift")
    said: list[str] = []
    assert "config lr: 0.1" in _run(ctx, instance, script, project="drift", echo=said.append)
    assert any(line.startswith(f"Code sync: 1 file(s) on {instance} differ from what runctl last sent")
               and "config.yaml" in line for line in said), said
    said.clear()
    ctx2 = __import__("runctl_jupyter").api.context()
    _run(ctx2, instance, script, project="drift", echo=said.append)  # drifted again by the last run
    assert ctx2.calls["ssm.SendCommand"] >= 1
