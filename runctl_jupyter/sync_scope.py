"""What code sync sends: the project root, the gitignore rules (.gitignore, .runctlignore), what is
never sent (secrets, keys, VCS, virtualenvs, caches, checkpoints), and the syntax check a script
passes before anything is sent. Pure, no AWS.

The gitignore matcher is hand-written rather than pathspec's: collect_files asks it about each
folder on the way down and never opens an ignored one, as git does, and so it agrees with
``git ls-files --others --exclude-standard`` (tests/sync/test_sync_gitignore.py). pathspec matches a
path *or any folder above it*, which in such a walk disagreed with git on 3-5 % of random rule sets,
the ``*`` / ``!*/`` / ``!*.py`` idiom among them (BENCHMARKS.md, "Ignore rules")."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import Step, UsageError
from .models import name_problem, project_from_folder

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


# --------------------------------------------------------------------------- gitignore rules

def _translate(pattern: str) -> str:
    """Regex (no anchors) for a gitignore glob: ``*``, ``?``, ``[...]``, ``**``, ``\\`` escapes."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            stars = j - i
            at_start = i == 0 or pattern[i - 1] == "/"
            at_end = j == n or pattern[j] == "/"
            if stars == 2 and at_start and at_end:
                if j == n:
                    out.append(".*")           # trailing "/**" (or the whole pattern "**")
                else:
                    out.append("(?:.*/)?")    # "**/" : zero or more directories
                    j += 1                    # the slash is part of it
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))      # no closing bracket: a literal "["
                i += 1
                continue
            body = pattern[i + 1:j]
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"(?!/)[{body}]")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class IgnorePattern:
    """One .gitignore line, relative to the directory holding that .gitignore (``base``)."""

    source: str
    base: str            # "" for the root, else "a/b"
    negate: bool
    dir_only: bool
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, line: str, base: str = "") -> IgnorePattern | None:
        source = line
        line = line.rstrip("\n").rstrip("\r")
        # trailing spaces are ignored unless escaped
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            return None
        negate = line.startswith("!")
        if negate or line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        if dir_only:
            line = line.rstrip("/")
        if not line:
            return None
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = re.compile(("" if anchored else "(?:.*/)?") + body, re.DOTALL)
        return cls(source=source, base=base, negate=negate, dir_only=dir_only, regex=regex)

    def matches(self, relpath: str, is_dir: bool) -> bool:
        """``relpath`` is relative to the project root."""
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not relpath.startswith(self.base + "/"):
                return False
            relpath = relpath[len(self.base) + 1:]
        return self.regex.fullmatch(relpath) is not None


class GitIgnore:
    """Ordered gitignore patterns; the last matching pattern decides (deeper files come later)."""

    def __init__(self, patterns: Iterable[IgnorePattern] = ()) -> None:
        self.patterns = list(patterns)

    @classmethod
    def from_lines(cls, lines: Iterable[str], base: str = "") -> GitIgnore:
        return cls(p for p in (IgnorePattern.parse(line, base) for line in lines) if p is not None)

    def extended(self, other: GitIgnore) -> GitIgnore:
        return GitIgnore([*self.patterns, *other.patterns])

    def decision(self, relpath: str, is_dir: bool) -> bool | None:
        """True: ignored; False: included by a `!` rule; None: no rule matched."""
        for pattern in reversed(self.patterns):
            if pattern.matches(relpath, is_dir):
                return not pattern.negate
        return None

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        return bool(self.decision(relpath, is_dir))


def read_ignore_file(path: Path, base: str) -> GitIgnore:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        return GitIgnore()
    return GitIgnore.from_lines(text.splitlines(), base)


def git_exclude_file(root: Path) -> Path:
    """The repository's ``info/exclude``: in ``.git/``, or, where ``.git`` is a file (a worktree or a
    submodule: ``gitdir: PATH``), in the git folder it names (its ``commondir`` for a worktree)."""
    dot_git = root / ".git"
    if not dot_git.is_file():
        return dot_git / "info" / "exclude"
    try:
        first = dot_git.read_text(encoding="utf-8", errors="surrogateescape").splitlines()[0]
    except (OSError, IndexError):
        return dot_git / "info" / "exclude"  # unreadable: no rules from it (read_ignore_file: none)
    git_dir = (root / first.removeprefix("gitdir:").strip()).resolve()
    common = git_dir / "commondir"
    if common.is_file():
        git_dir = (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
    return git_dir / "info" / "exclude"


def project_root(script_path: str | os.PathLike[str]) -> Path:
    """Nearest folder at or above the script holding one of :data:`ROOT_MARKERS`, else the script's
    own folder (never a parent without a marker: a script in ``~`` must not sync the home folder)."""
    script = Path(script_path).expanduser().absolute()
    start = script if script.is_dir() else script.parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return start


def choose_project(explicit: str | None, configured: str | None, on_instance: str | None,
                   start: str | os.PathLike[str]) -> str:
    """The one rule for a command's project: ``--project``, else the ``project`` setting, else the
    instance's (its runctl:project tag: the project of its newest run, or the one it was created for),
    else the name of the project folder holding ``start`` (the script, or the current folder)."""
    name = explicit or configured or on_instance or project_from_folder(project_root(start).name)
    return check_project_name(name)


def check_project_name(project: str) -> str:
    """Project names become one path component on the instance and an S3 prefix."""
    problem = name_problem(project)
    if problem:
        raise UsageError(f"Project name {project!r} is not usable: it {problem}.",
                         [Step("Pick a name like my-project or exp_2 (it becomes a folder and an S3 prefix)"),
                          Step("Pass it with --project NAME, or `config set project NAME`")])
    return project


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
