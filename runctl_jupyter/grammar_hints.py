"""Did-you-mean for a mistyped runctl flag: the grammar never takes an abbreviation or a near miss,
but it names the flag the user probably meant, with the corrected command to paste."""

from __future__ import annotations

import argparse
import difflib
import shlex
from collections.abc import Sequence

from .errors import Step, cmd

CUTOFF = 0.6  # difflib's ratio: `--wai` ~ `--wait`, `--regoin` ~ `--region`; `--x` matches nothing


def _subparser(root: argparse.ArgumentParser, path: Sequence[str]) -> argparse.ArgumentParser | None:
    node = root
    for word in path:
        sub = next((a for a in node._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word not in sub.choices:
            return None
        node = sub.choices[word]
    return node


def flags_of(root: argparse.ArgumentParser, path: Sequence[str]) -> list[str]:
    """Every long flag the command ``path`` takes (its own and the global ones)."""
    flags = [o for o in root._option_string_actions if o.startswith("--")]
    node = _subparser(root, path)
    if node is not None:
        flags += [o for o in node._option_string_actions if o.startswith("--") and o not in flags]
    return [f for f in flags if f != "--help"]


def suggestions(root: argparse.ArgumentParser, path: Sequence[str], argv: Sequence[str],
                unknown: Sequence[str]) -> list[Step]:
    """One step per unknown ``--flag`` close to a real one: the command again with the flag corrected."""
    flags = flags_of(root, path)
    steps: list[Step] = []
    for word in unknown:
        if not word.startswith("--"):
            continue
        name, eq, value = word.partition("=")
        match = difflib.get_close_matches(name, flags, n=1, cutoff=CUTOFF)
        if not match:
            continue
        fixed = [match[0] + eq + value if w == word else w for w in argv]
        steps.append(cmd(shlex.join(fixed), f"Did you mean {match[0]}"))
    return steps
