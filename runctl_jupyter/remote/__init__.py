"""The shell scripts runctl runs on an instance, and how one is turned into an SSM command.

Each ``*.sh`` beside this file is a real bash script (tested directly with bash). They travel to an
instance once per version (:func:`install_commands`: content-addressed, checked against their
SHA-256 sums), not inline in every command, so every SendCommand stays far inside AWS's 64 KB. To
run one through ``AWS-RunShellScript`` (which runs its commands with ``/bin/sh``),
:func:`command_for` runs ``bash INSTALLED/NAME.sh ARG…`` with every argument and environment value
quoted by :func:`shlex.quote`: nothing the user passed is ever interpreted by a shell. Scripts report back with ``@runctl key=value`` lines on stdout
(values are %-encoded when they could hold spaces); :func:`parse_fields` reads them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import secrets
import shlex
import tarfile
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


# Where an instance keeps runctl's scripts: root's, outside every user's home (the training, run as
# another user, cannot rewrite what root runs next); the sandbox points it into the instance's folder.
SCRIPTS_HOME = '"${RUNCTL_SCRIPTS_HOME:-/var/lib/runctl/scripts}"'
NEEDS_INSTALL_EXIT = 98
INSTALL_CHUNK_BYTES = 56 * 1024  # of base64 per install command: inside SendCommand's 64 KB with the shell lines
SCRIPT_NAMES = tuple(sorted(p.name[:-3] for p in resources.files(__package__).iterdir()
                            if p.name.endswith(".sh")))


@cache
def scripts_archive() -> tuple[str, bytes]:
    """Every packaged script in one reproducible tar.gz (with its SHA256SUMS), and its version: the
    first 16 hex digits of the SHA-256 of the sums, so any change to any script is a new version."""
    sums = "".join(f"{hashlib.sha256(script_text(n).encode()).hexdigest()}  {n}.sh\n" for n in SCRIPT_NAMES)
    files = [(f"{n}.sh", script_text(n).encode()) for n in SCRIPT_NAMES] + [("SHA256SUMS", sums.encode())]
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(sums.encode()).hexdigest()[:16], raw.getvalue()


def scripts_version() -> str:
    return scripts_archive()[0]


def install_commands() -> list[str]:
    """The /bin/sh commands that put this version's scripts on an instance, checked against their
    SHA-256 sums and moved into place at once (a half-written version is never used): the archive in
    base64 chunks, each command well inside SendCommand's 64 KB."""
    version, archive = scripts_archive()
    b64 = base64.b64encode(archive).decode()
    chunks = [b64[i:i + INSTALL_CHUNK_BYTES] for i in range(0, len(b64), INSTALL_CHUNK_BYTES)]
    # one folder per install: two first contacts at once (a stop and a status) never share one
    incoming = f'"$h/.incoming-{version}-{secrets.token_hex(4)}"'
    commands = []
    for index, chunk in enumerate(chunks):
        lines = [f"h={SCRIPTS_HOME}", "umask 022"]
        if index == 0:
            lines += ['mkdir -p "$h" || exit 97', f"rm -rf {incoming}", f"mkdir {incoming} || exit 97"]
        lines.append(f"printf '%s' '{chunk}' >> {incoming}/archive.b64 || exit 97")
        if index == len(chunks) - 1:
            lines += [f"cd {incoming} && base64 -d archive.b64 | tar -xzf - && rm -f archive.b64 &&",
                      "  sha256sum -c --status SHA256SUMS || { echo '@runctl scripts_install=corrupt'; exit 97; }",
                      # one installer at a time puts a version in place; one that finds it whole keeps it
                      'exec 8>"$h/.install.lock" || exit 97',
                      "if command -v flock >/dev/null 2>&1; then flock -w 60 8 || exit 97; fi",
                      f'cd / && if (cd "$h/{version}" 2>/dev/null && sha256sum -c --status SHA256SUMS 2>/dev/null); '
                      f'then rm -rf {incoming}; else rm -rf "$h/{version}" && mv -T {incoming} "$h/{version}" '
                      "|| exit 97; fi",
                      f"echo '@runctl scripts_installed={version}'"]
        commands.append("\n".join(lines) + "\n")
    return commands


def command_for(name: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                stdin: str | None = None) -> str:
    """One /bin/sh command that runs the installed script ``name`` with bash, byte-exact args and env.

    The scripts are installed once per version (:func:`install_commands`); the command checks this
    version is there and unaltered (its SHA256SUMS) and otherwise exits NEEDS_INSTALL_EXIT with
    ``@runctl scripts_missing=VERSION``, running nothing. Scripts find each other (and ``common.sh``)
    in ``$RUNCTL_SCRIPTS_DIR``. ``stdin`` (e.g. presigned URLs: secrets) reaches the script on its
    standard input from a file in the command's own root-only temp folder, never in an argv that
    `ps` shows every user.
    """
    version = scripts_version()
    marker = f"RUNCTL_EOF_{secrets.token_hex(8)}"
    lines = [f's={SCRIPTS_HOME}/{version}',
             'if ! (cd "$s" 2>/dev/null && sha256sum -c --status SHA256SUMS 2>/dev/null); then',
             f"  echo '@runctl scripts_missing={version}'; exit {NEEDS_INSTALL_EXIT}", "fi"]
    source = "/dev/null"
    if stdin is not None:
        assert marker not in stdin
        lines += ['d=$(mktemp -d "${TMPDIR:-/tmp}/runctl.XXXXXX") || exit 97',
                  f"cat > \"$d/stdin\" <<'{marker}'\n{stdin}{'' if stdin.endswith(chr(10)) else chr(10)}{marker}"]
        source = '"$d/stdin"'
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    quoted_args = " ".join(shlex.quote(a) for a in args)
    run = " ".join(p for p in ('RUNCTL_SCRIPTS_DIR="$s"', assignments, f'bash "$s/{name}.sh"', quoted_args) if p)
    lines += [f"{run} <{source}", "rc=$?"]
    if stdin is not None:
        lines.append('rm -rf "$d"')
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def needs_install(exit_code: int, stdout: str) -> bool:
    """Whether a command found this version of the scripts missing (or altered) on the instance."""
    return exit_code == NEEDS_INSTALL_EXIT and parse_fields(stdout).get("scripts_missing") == scripts_version()


def sources_common(name: str) -> bool:
    """Whether script ``name`` sources ``common.sh`` from its own folder."""
    return COMMON_SOURCE_LINE in script_text(name)


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


def read_pages(fetch, key: str, max_pages: int = 1000) -> tuple[list[dict[str, str]], str]:
    """Every ``key`` record of a paged listing (a script that prints ``@runctl count= total= [next=]``
    after each page, as runs.sh and checkpoints.sh do): ``fetch(start)`` returns one page's result.

    Returns the records and, when the listing may be incomplete, why (``""`` when it is whole): a
    command that did not succeed, a page whose lines were cut (SSM keeps 24,000 characters), totals
    that changed between pages, a page that did not advance.
    """
    records: list[dict[str, str]] = []
    start, total = 0, None
    for _ in range(max_pages):
        result = fetch(start)
        page_records = parse_records(result.stdout, key)
        counts = parse_records(result.stdout, "count")
        if result.status != "Success" or len(counts) != 1:
            return records, f"the listing ended {result.status} without its count"
        page = counts[0]
        if int(page["count"]) != len(page_records) or (total is not None and int(page["total"]) != total):
            return records, (f"a page was cut ({len(page_records)} of {page['count']} lines arrived) "
                             "or the listing changed while it was read")
        total = int(page["total"])
        records += page_records
        if "next" not in page:
            return records, "" if len(records) == total else f"{len(records)} of {total} were listed"
        if int(page["next"]) <= start:
            return records, "the listing did not advance"
        start = int(page["next"])
    return records, f"the listing has more than {max_pages} pages"

