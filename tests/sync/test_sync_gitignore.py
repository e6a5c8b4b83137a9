"""The gitignore rules a user notices, asked of the real file selection (:func:`collect_files`).

Each case states what is sent; where git is installed, the same tree is also asked of
``git ls-files --others --exclude-standard`` so the expectation is git's, not ours, and random
rule sets and trees must give git's answer too (the reason the matcher is not pathspec's:
BENCHMARKS.md, "Ignore rules")."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_jupyter.sync import collect_files

CASES: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    # name: ({ignore file: text}, files in the project, files sent besides the ignore files)
    "negation re-includes": (
        {".gitignore": "*.txt\n!keep.txt\n"},
        ["a.txt", "keep.txt", "sub/b.txt", "sub/keep.txt", "main.py"],
        ["keep.txt", "main.py", "sub/keep.txt"]),
    "the last matching rule wins": (
        {".gitignore": "!keep.txt\n*.txt\n"},
        ["keep.txt", "main.py"],
        ["main.py"]),
    "a trailing slash matches folders only": (
        {".gitignore": "build/\nlogs/\n"},
        ["build/out.o", "src/build/out.o", "src/build.py", "tools/build", "logs"],
        ["logs", "src/build.py", "tools/build"]),
    "a leading slash anchors to the ignore file's folder": (
        {".gitignore": "/data\n"},
        ["data/big.csv", "src/data/small.csv", "main.py"],
        ["main.py", "src/data/small.csv"]),
    "a slash in the middle anchors too": (
        {".gitignore": "doc/frotz\n"},
        ["doc/frotz", "a/doc/frotz", "doc/other"],
        ["a/doc/frotz", "doc/other"]),
    "**/ matches at any depth": (
        {".gitignore": "**/deep\na/**/z.py\n"},
        ["deep", "a/deep/x.py", "a/b/deep", "a/b/deeper", "a/z.py", "a/b/c/z.py", "b/z.py"],
        ["a/b/deeper", "b/z.py"]),
    "/** leaves the folder, so a file in it can be re-included": (
        {".gitignore": "data/**\n!data/.gitkeep\n"},
        ["data/.gitkeep", "data/big.csv", "data/sub/x.csv", "main.py"],
        ["data/.gitkeep", "main.py"]),
    "nothing inside an ignored folder comes back": (
        {".gitignore": "logs/\n!logs/keep.txt\n"},
        ["logs/keep.txt", "logs/run.log", "main.py"],
        ["main.py"]),
    "a nested ignore file's rules are relative to its folder": (
        {".gitignore": "*.tmp\n", "sub/.gitignore": "/local\n!keep.tmp\n"},
        ["local", "sub/local", "sub/x/local", "keep.tmp", "sub/keep.tmp", "sub/x/keep.tmp", "sub/y.tmp"],
        ["local", "sub/keep.tmp", "sub/x/keep.tmp", "sub/x/local"]),
    "escaped # and ! are names, and # starts a comment": (
        {".gitignore": "\\#notes.txt\n\\!bang.txt\n# main.py\n"},
        ["#notes.txt", "notes.txt", "!bang.txt", "main.py"],
        ["main.py", "notes.txt"]),
    "everything but Python files (folders re-included so their files can be)": (
        {".gitignore": "*\n!*/\n!*.py\n!.gitignore\n"},
        ["a.py", "a/b.py", "a/c.txt", "notes.md", "a/d/e.py"],
        ["a.py", "a/b.py", "a/d/e.py"]),
    "only the top-level folders re-included": (
        {".gitignore": "/*\n!/src/\n!/pyproject.toml\n!/.gitignore\n"},
        ["pyproject.toml", "src/a.py", "src/d/b.py", "notes.md", "data/x.csv"],
        ["pyproject.toml", "src/a.py", "src/d/b.py"]),
    "/**/ leaves out the folders inside, not the files": (
        {".gitignore": "out/**/\n"},
        ["out/summary.txt", "out/run1/x.bin", "main.py"],
        ["main.py", "out/summary.txt"]),
    "brackets and ? match one character, * stays in its folder": (
        {".gitignore": "[ab]x.py\nq?.py\nsrc*.py\n"},
        ["ax.py", "cx.py", "q1.py", "q12.py", "src_a.py", "src/a.py"],
        ["cx.py", "q12.py", "src/a.py"]),
}

RUNCTL_CASES: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    # git does not read .runctlignore: the expectation is ours alone
    ".runctlignore adds rules, after .gitignore's": (
        {".gitignore": "*.csv\n", ".runctlignore": "!small.csv\nweights/\n"},
        ["big.csv", "small.csv", "weights/w.bin", "main.py"],
        ["main.py", "small.csv"]),
    "a nested .runctlignore is relative to its folder": (
        {"sub/.runctlignore": "/out\n"},
        ["out/a.txt", "sub/out/a.txt", "sub/deeper/out/a.txt"],
        ["out/a.txt", "sub/deeper/out/a.txt"]),
}


def _make(root: Path, ignore_files: dict[str, str], files: list[str]) -> None:
    for rel, text in {**dict.fromkeys(files, "x"), **ignore_files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _git_would_send(root: Path) -> list[str]:
    git = ["git", "-c", "core.excludesFile=/dev/null", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    out = subprocess.run([*git, "ls-files", "-z", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.split("\0") if p)


@pytest.mark.parametrize("name", list(CASES) + list(RUNCTL_CASES))
def test_ignore_rules_decide_what_is_sent(tmp_path: Path, name: str) -> None:
    ignore_files, files, sent = CASES.get(name) or RUNCTL_CASES[name]
    _make(tmp_path, ignore_files, files)
    expected = sorted([*sent, *ignore_files])
    assert list(collect_files(tmp_path)) == expected
    if name in CASES and shutil.which("git"):
        assert _git_would_send(tmp_path) == expected


def test_an_ignored_folder_is_not_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make(tmp_path, {".gitignore": "/data/\nsrc/**\n"}, ["main.py", "data/a/b.csv", "src/x/y.py"])
    walked: list[str] = []
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
        walked.append(Path(path).relative_to(tmp_path).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(collect_files(tmp_path)) == [".gitignore", "main.py"]
    assert walked == [".", "src"]     # src/** leaves src itself, so it is opened, but not src/x


# ---------------------------------------------------------------- random rules and trees, against git

_RULES = st.sampled_from([
    "a", "a/", "/a", "a/**", "a/**/", "**/a", "*.py", "*.txt", "!a", "!a/", "!*.py", "!x.py", "*", "*/", "!*/",
    "**", "a/*", "a/b", "/a/b", "b/", "!b", "!b/", "a/**/b", "**/b/", "c", "!c/x.py", "!a/x.py", "/*", "!/a",
    "b/*", "!b/y.txt", "[ab]", "?.py", "!/.gitignore"])
_PATHS = st.builds(lambda folders, leaf: "/".join([*folders, leaf]),
                   st.lists(st.sampled_from(["a", "b", "c"]), max_size=3), st.sampled_from(["x.py", "y.txt", "a", "b"]))


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(_PATHS, min_size=1, max_size=10), rules=st.lists(_RULES, min_size=1, max_size=4),
       nested=st.tuples(st.sampled_from(["a", "b", "a/b", "c/a"]), st.lists(_RULES, min_size=1, max_size=3)))
def test_random_rules_select_what_git_would(paths: list[str], rules: list[str], nested: tuple[str, list[str]]) -> None:
    files = sorted({p for p in paths if not any(q.startswith(p + "/") for q in paths)})  # a name is a file or a folder
    ignore_files = {".gitignore": "\n".join(rules) + "\n"}
    if any(f.startswith(nested[0] + "/") for f in files):
        ignore_files[nested[0] + "/.gitignore"] = "\n".join(nested[1]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make(root, ignore_files, files)
        assert list(collect_files(root)) == _git_would_send(root)


def test_a_git_worktree_is_synced_with_its_repositorys_exclude_rules(tmp_path):
    """In a worktree (or a submodule) `.git` is a file naming the git folder: sync used to fail there
    with NotADirectoryError; git's own info/exclude (in the main repository) applies."""
    main = tmp_path / "main"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    (main / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "-C", str(main), "add", "train.py"], check=True)
    subprocess.run(["git", "-C", str(main), "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "x"],
                   check=True)
    (main / ".git" / "info").mkdir(exist_ok=True)
    (main / ".git" / "info" / "exclude").write_text("scratch.txt\n")
    tree = tmp_path / "tree"
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", str(tree)], check=True)
    (tree / "scratch.txt").write_text("local notes\n")
    assert (tree / ".git").is_file()
    files = collect_files(tree)
    assert "train.py" in files and "scratch.txt" not in files
