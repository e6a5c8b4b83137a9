"""The shell scripts runctl runs on an instance, and how one is turned into an SSM command.

Each ``*.sh`` beside this file is a real bash script (tested directly with bash). To run one
through ``AWS-RunShellScript`` (which runs its commands with ``/bin/sh``), :func:`command_for`
writes the script to a temporary file on the instance and runs ``bash FILE ARG…`` with every
argument and environment value quoted by :func:`shlex.quote`: nothing the user passed is ever
interpreted by a shell. Scripts report back with ``@runctl key=value`` lines on stdout
(values are %-encoded when they could hold spaces); :func:`parse_fields` reads them.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from urllib.parse import unquote

FIELD_PREFIX = "@runctl "
COMMON_SOURCE_LINE = '. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh" || exit 97'


@cache
def script_text(name: str) -> str:
    """The text of ``runctl_jupyter/remote/<name>.sh``."""
    return resources.files(__package__).joinpath(f"{name}.sh").read_text(encoding="utf-8")


def script_path(name: str) -> str:
    """A filesystem path to the packaged script (for running it directly with bash in tests)."""
    return str(resources.files(__package__).joinpath(f"{name}.sh"))


def command_for(name: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                with_scripts: Sequence[str] = (), stdin: str | None = None) -> str:
    """One /bin/sh command that runs script ``name`` with bash, byte-exact arguments and env.

    ``with_scripts`` ships more packaged scripts beside it; the main script finds them in
    ``$RUNCTL_SCRIPTS_DIR`` (e.g. launch.sh runs sync_apply.sh only once it holds the claim).
    ``common.sh``, the helpers most scripts source from their own folder, goes with them once.
    ``stdin`` (e.g. presigned URLs: secrets) reaches the script on its standard input from a file in
    the command's own root-only temp folder, never in an argv that `ps` shows every user.
    """
    marker = f"RUNCTL_EOF_{secrets.token_hex(8)}"
    lines = ['d=$(mktemp -d "${TMPDIR:-/tmp}/runctl.XXXXXX") || exit 97']
    for script in scripts_to_ship(name, with_scripts):
        text = script_text(script)
        assert marker not in text
        body = text if text.endswith("\n") else text + "\n"
        lines.append(f"cat > \"$d/{script}.sh\" <<'{marker}'\n{body}{marker}")
    source = "/dev/null"
    if stdin is not None:
        assert marker not in stdin
        lines.append(f"cat > \"$d/stdin\" <<'{marker}'\n{stdin}{'' if stdin.endswith(chr(10)) else chr(10)}{marker}")
        source = '"$d/stdin"'
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    quoted_args = " ".join(shlex.quote(a) for a in args)
    run = " ".join(p for p in ('RUNCTL_SCRIPTS_DIR="$d"', assignments, f'bash "$d/{name}.sh"', quoted_args) if p)
    lines += [f"{run} <{source}", "rc=$?", 'rm -rf "$d"', "exit $rc"]
    return "\n".join(lines) + "\n"


def sources_common(name: str) -> bool:
    """Whether script ``name`` sources ``common.sh`` from its own folder."""
    return COMMON_SOURCE_LINE in script_text(name)


def scripts_to_ship(name: str, with_scripts: Sequence[str] = ()) -> list[str]:
    """``name``, ``with_scripts`` and, once, ``common`` when any of them sources it."""
    scripts = list(dict.fromkeys((name, *with_scripts)))
    if any(sources_common(s) for s in scripts):
        scripts.append("common")
    return scripts


def parse_fields(stdout: str) -> dict[str, str]:
    """Collect ``@runctl key=value …`` lines (last value of a key wins; values %-decoded)."""
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.startswith(FIELD_PREFIX):
            continue
        for item in line[len(FIELD_PREFIX):].split():
            key, sep, value = item.partition("=")
            if sep:
                fields[key] = unquote(value)
    return fields


def parse_records(stdout: str, key: str) -> list[dict[str, str]]:
    """Every ``@runctl`` line that has ``key`` as one record (for scripts that list things)."""
    records = []
    for line in stdout.splitlines():
        if line.startswith(FIELD_PREFIX):
            fields = parse_fields(line)
            if key in fields:
                records.append(fields)
    return records
