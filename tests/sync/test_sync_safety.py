"""What sync sends: the right folder, never secrets, never more than the size limit, a script that
compiles. (The sandbox end of it: tests/integration/test_sync_sandbox.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl_jupyter.errors import UsageError
from runctl_jupyter.sync import check_sync_root, check_syntax, collect_files, project_root


def _write(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("marker", [".git", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt",
                                    ".runctl.toml"])
def test_the_nearest_folder_with_a_project_marker_is_the_root(tmp_path: Path, marker: str) -> None:
    _write(tmp_path / "proj", marker if marker != ".git" else ".git/HEAD")
    script = _write(tmp_path / "proj", "src/train/train.py")
    assert project_root(script) == tmp_path / "proj"


def test_without_a_marker_only_the_scripts_own_folder_is_synced(tmp_path: Path) -> None:
    script = _write(tmp_path / "a" / "b", "train.py")
    assert project_root(script) == tmp_path / "a" / "b"


@pytest.mark.parametrize("folder", ["home", "/", "/etc", "/usr"])
def test_a_home_or_system_folder_is_refused_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         folder: str) -> None:
    home = tmp_path / "home-of-user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    root = home if folder == "home" else Path(folder)
    with pytest.raises(UsageError) as err:
        check_sync_root(root, explicit=False)
    assert "--project-root" in err.value.render() and "--no-sync-code" in err.value.render()
    assert check_sync_root(root, explicit=True) == root


def test_secrets_keys_and_credentials_are_never_sent(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for rel in ("train.py", ".aws/credentials", ".ssh/id_rsa", "keys/deploy.pem", "id_ed25519", "id_ed25519.pub",
                ".netrc", ".env", ".env.local", ".env.example", "checkpoints/best.pt", "env/pyvenv.cfg",
                "env/lib/site.py", ".mypy_cache/x", "data.csv"):
        _write(root, rel)
    # .gitignore cannot bring a key back; a `!` rule in .runctlignore sends an .env* file on purpose
    _write(root, ".gitignore", b"!.ssh/\n!*.pem\n")
    _write(root, ".runctlignore", b"!.env.example\ndata.csv\n")
    excluded: dict[str, str] = {}
    files = collect_files(root, excluded)
    assert sorted(files) == [".env.example", ".gitignore", ".runctlignore", "id_ed25519.pub", "train.py"]
    assert excluded[".aws/"] == "AWS credentials" and excluded[".ssh/"] == "SSH keys"
    assert excluded["keys/deploy.pem"] == "a private key" and excluded["id_ed25519"] == "an SSH key"
    assert excluded[".env"].startswith("secrets") and excluded[".env.local"].startswith("secrets")
    assert excluded["env/"] == "a virtualenv" and excluded[".netrc"] == "credentials"
    assert "data.csv" not in excluded  # left out by the user's own .runctlignore: nothing to explain


def test_a_script_that_does_not_compile_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    script = _write(tmp_path, "train.py", b"import os\n\ndef main(:\n    pass\n")
    with pytest.raises(UsageError) as err:
        check_syntax(script)
    assert err.value.message.startswith("train.py has a syntax error (line 3, column 10): ")
    check_syntax(_write(tmp_path, "ok.py", b"print('fine')\n"))
    check_syntax(_write(tmp_path, "run.sh", b"not python (\n"))  # only .py files are compiled


def test_a_file_sync_cannot_send_is_said_with_the_exclusions_in_one_line_not_as_a_python_warning(tmp_path,
                                                                                               recwarn):
    from runctl_jupyter import sync, training

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "bad\nname.py").write_text("x = 1\n")
    excluded: dict[str, str] = {}
    files = sync.collect_files(tmp_path, excluded)
    assert "train.py" in files and "bad\nname.py" not in files
    assert "control characters" in excluded["bad\nname.py"]
    said: list[str] = []
    training.launch._say_excluded(excluded, said.append)
    assert len(said) == 1 and "\n" not in said[0] and "'bad\\nname.py'" in said[0]
    assert not [w for w in recwarn if "runctl sync" in str(w.message)]  # no "file.py:123: UserWarning" line
