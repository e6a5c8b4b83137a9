"""What code sync sends: the project root, what is never sent (secrets, keys, VCS, virtualenvs,
caches, checkpoints), and the syntax check a script passes before anything is sent. Pure, no AWS."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from .errors import Step, UsageError

#: Never synced, whatever .gitignore/.runctlignore say: folder name → why.
ALWAYS_EXCLUDED_DIRS = {
    ".aws": "AWS credentials", ".ssh": "SSH keys", ".gnupg": "GnuPG keys",
    ".git": "version control", ".hg": "version control", ".svn": "version control",
    ".venv": "a virtualenv", "venv": "a virtualenv",
    "__pycache__": "a cache", ".ipynb_checkpoints": "a cache", ".pytest_cache": "a cache", ".mypy_cache": "a cache",
    ".ruff_cache": "a cache", ".tox": "a cache", ".nox": "a cache",
    "checkpoints": "checkpoints stay on the instance (RUNCTL_CHECKPOINT_DIR) and in S3, never in the code",
}
#: Files never synced: (glob on the name, why). `.env*` only unless a `!` rule includes it explicitly.
ALWAYS_EXCLUDED_FILES = (("*.pyc", "a cache"), ("*.pem", "a private key"), ("id_rsa*", "an SSH key"),
                         ("id_dsa*", "an SSH key"), ("id_ecdsa*", "an SSH key"), ("id_ed25519*", "an SSH key"),
                         (".netrc", "credentials"), (".pgpass", "credentials"), (".git-credentials", "credentials"))
SECRET_ENV_FILES = (".env", ".env.*")
UNREMARKABLE = frozenset({"version control", "a cache"})  # left out without a word
IGNORE_FILES = (".gitignore", ".runctlignore")  # .runctlignore: gitignore syntax, for what git keeps but runctl should not send

#: What makes a folder a project root (the nearest one above the script wins).
ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", ".runctl.toml")
#: Folders never synced whole unless the user names them with --project-root.
_SYSTEM_FOLDERS = frozenset(Path(p) for p in ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt",
                                               "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/usr", "/var"))


def project_root(script_path: str | os.PathLike[str]) -> Path:
    """Nearest folder at or above the script holding one of :data:`ROOT_MARKERS`, else the script's
    own folder (never a parent without a marker: a script in ``~`` must not sync the home folder)."""
    script = Path(script_path).expanduser().absolute()
    start = script if script.is_dir() else script.parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return start


def check_sync_root(root: Path, explicit: bool) -> Path:
    """Refuse to sync a home folder, ``/`` or a system folder unless named with --project-root."""
    if explicit:
        return root
    resolved = root.resolve()
    if resolved == Path.home().resolve() or resolved in _SYSTEM_FOLDERS or resolved.parent == Path("/home"):
        raise UsageError(
            f"Refusing to sync {resolved}: it is a home or system folder, not a project (it would send "
            "everything in it, keys and credentials included).",
            [Step("Put the script in a project folder (one with .git, pyproject.toml, requirements.txt or "
                  ".runctl.toml), or"),
             Step(f"Name the folder to sync: --project-root {resolved} (its .runctlignore and the always-"
                  "excluded secrets still apply)"),
             Step("Or train without syncing: --no-sync-code")])
    return root


def check_syntax(script: Path) -> None:
    """A Python script must compile before anything is sent (runctl's "Training Validation")."""
    if script.suffix != ".py":
        return
    try:
        source = script.read_bytes()
        compile(source, str(script), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        text = (exc.text or "").strip()
        raise UsageError(f"{script.name} has a syntax error ({where}): {exc.msg}"
                         + (f": {text[:80]}" if text else ""),
                         [Step(f"Fix it and run the command again (`python -m py_compile {script}` checks it)")]) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read {script}: {exc}.", [Step("Check the file")]) from None


def always_excluded(path: Path, is_dir: bool, included: bool | None = None) -> str | None:
    """Why ``path`` is never synced (None: it may be). ``included`` is the ignore rules' decision:
    False when a `!` rule names it, which only a `.env*` file honours."""
    name = path.name
    if is_dir:
        if name in ALWAYS_EXCLUDED_DIRS:
            return ALWAYS_EXCLUDED_DIRS[name]
        return "a virtualenv" if (path / "pyvenv.cfg").is_file() else None
    for glob, why in ALWAYS_EXCLUDED_FILES:
        if fnmatch.fnmatchcase(name, glob) and not (glob.startswith("id_") and name.endswith(".pub")):
            return why
    if any(fnmatch.fnmatchcase(name, glob) for glob in SECRET_ENV_FILES) and included is not False:
        return "secrets (an environment file; a `!` rule in .runctlignore sends it)"
    return None
