"""Ignore rules: runctl's hand-written matcher vs one built on pathspec (not a test; BENCHMARKS.md).

    .venv/bin/pip install --target /tmp/pathspec-target 'pathspec>=0.12'
    PYTHONPATH=/tmp/pathspec-target .venv/bin/python -m benchmarks.compare_ignore_rules [ROUNDS] [GIT_CASES]

1. Time :func:`collect_files` on a generated 1,000-file project (walk + ignore rules + sha256 of
   every file) and the ignore rules alone (parse 21 ignore files, decide 1,020 paths), the two
   matchers interleaved in one process so that a busy machine slows both alike.
2. Count, over GIT_CASES seeded random trees and rule sets, how often each matcher's selection
   differs from ``git ls-files --others --exclude-standard``.

The pathspec matcher is the best of the variants tried: a layer per ignore file, files asked with
``GitIgnoreSpec.check_file(path)``, folders with ``check_file(path + "/")`` where ``x/**`` is asked
as ``x/*/`` (else ``x/**`` would leave out ``x`` itself).
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pathspec import GitIgnoreSpec

import runctl_jupyter.sync_scope as scope
from runctl_jupyter.sync import collect_files

ROOT_RULES = "*.log\n/data/\nbuild/\n!important.log\noutputs/*\n!outputs/keep.txt\n**/tmp\n"
PKG_RULES = "*.bin\n!weights.bin\n/local\n"


class PathspecIgnore:
    """The candidate: same interface as :class:`runctl_jupyter.sync_scope.GitIgnore`."""

    def __init__(self, layers: Iterable[tuple[str, GitIgnoreSpec, GitIgnoreSpec]] = ()) -> None:
        self.layers = tuple(layers)

    @classmethod
    def from_lines(cls, lines: Iterable[str], base: str = "") -> PathspecIgnore:
        lines = list(lines)
        files = GitIgnoreSpec.from_lines(lines)
        if all(rule.include is None for rule in files.patterns):
            return cls()
        as_folders = [line.rstrip(" ")[:-3] + "/*/" if line.rstrip(" ").endswith("/**") else line for line in lines]
        folders = files if as_folders == lines else GitIgnoreSpec.from_lines(as_folders)
        return cls([(base, files, folders)])

    def extended(self, other: PathspecIgnore) -> PathspecIgnore:
        return PathspecIgnore((*self.layers, *other.layers)) if other.layers else self

    def decision(self, relpath: str, is_dir: bool) -> bool | None:
        for base, files, folders in reversed(self.layers):
            if base and not relpath.startswith(base + "/"):
                continue
            path = relpath[len(base) + 1:] if base else relpath
            include = (folders.check_file(path + "/") if is_dir else files.check_file(path)).include
            if include is not None:
                return include
        return None


MATCHERS: dict[str, Any] = {"hand-written": scope.GitIgnore, "pathspec": PathspecIgnore}


def use(matcher: Any) -> None:
    scope.GitIgnore = matcher  # read_ignore_file (so collect_files) builds rules with this class


def make_project(root: Path) -> None:
    (root / "pyproject.toml").write_text("[project]\nname='p'\n")
    (root / ".gitignore").write_text(ROOT_RULES)
    (root / "run.log").write_text("x")
    for d in range(20):
        pkg = root / f"pkg{d:02d}"
        pkg.mkdir()
        (pkg / ".gitignore").write_text(PKG_RULES)
        for i in range(50):
            (pkg / f"mod{i:03d}.py").write_text(f"X = {i}\n")


def decide_all(matcher: Any) -> list[bool | None]:
    rules = matcher.from_lines(ROOT_RULES.splitlines())
    decisions = []
    for d in range(20):
        pkg = f"pkg{d:02d}"
        pkg_rules = rules.extended(matcher.from_lines(PKG_RULES.splitlines(), pkg))
        decisions.append(rules.decision(pkg, True))
        decisions += [pkg_rules.decision(f"{pkg}/mod{i:03d}.py", False) for i in range(50)]
    return decisions


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timings(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root)
        collect: dict[str, list[float]] = {name: [] for name in MATCHERS}
        rules_alone: dict[str, list[float]] = {name: [] for name in MATCHERS}
        selected: dict[str, list[str]] = {}
        for _ in range(rounds):
            for name, matcher in MATCHERS.items():
                use(matcher)
                collect[name].append(timed(lambda: collect_files(root)))
                selected[name] = list(collect_files(root))
                rules_alone[name].append(timed(lambda matcher=matcher: decide_all(matcher)))
    assert selected["hand-written"] == selected["pathspec"]
    for name in MATCHERS:
        print(f"{name:>12}: collect_files ({len(selected[name])} files) min {min(collect[name]) * 1e3:.1f} ms, "
              f"median {statistics.median(collect[name]) * 1e3:.1f} ms; "
              f"rules alone min {min(rules_alone[name]) * 1e3:.2f} ms")


VOCAB = ["a", "a/", "/a", "a/**", "a/**/", "**/a", "*.py", "*.txt", "!a", "!a/", "!*.py", "!x.py", "*", "*/", "!*/",
         "**", "a/*", "a/b", "/a/b", "b/", "!b", "!b/", "a/**/b", "**/b/", "c", "!c/x.py", "!a/x.py", "/*", "!/a",
         "b/*", "!b/y.txt"]


def git_would_send(root: Path) -> list[str]:
    git = ["git", "-c", "core.excludesFile=/dev/null", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    out = subprocess.run([*git, "ls-files", "-z", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.split("\0") if p)


def against_git(cases: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    differ = dict.fromkeys(MATCHERS, 0)
    for _ in range(cases):
        paths = {"/".join([*rng.choices("abc", k=rng.randint(0, 3)), rng.choice(["x.py", "y.txt", "a", "b"])])
                 for _ in range(rng.randint(3, 10))}
        files = sorted(p for p in paths if not any(q.startswith(p + "/") for q in paths))
        ignore_files = {".gitignore": "\n".join(rng.sample(VOCAB, rng.randint(1, 4))) + "\n"}
        folders = sorted({f.rsplit("/", 1)[0] for f in files if "/" in f})
        if folders and rng.random() < 0.4:
            ignore_files[rng.choice(folders) + "/.gitignore"] = "\n".join(rng.sample(VOCAB, rng.randint(1, 3))) + "\n"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for rel, text in {**dict.fromkeys(files, "x"), **ignore_files}.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            want = git_would_send(root)
            for name, matcher in MATCHERS.items():
                use(matcher)
                differ[name] += list(collect_files(root)) != want
    print(f"{cases} random cases (seed {seed}), selections that differ from git: "
          + ", ".join(f"{name} {n} ({n / cases:.1%})" for name, n in differ.items()))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    try:
        timings(rounds)
        if cases and shutil.which("git"):
            against_git(cases)
    finally:
        use(MATCHERS["hand-written"])


if __name__ == "__main__":
    main()
