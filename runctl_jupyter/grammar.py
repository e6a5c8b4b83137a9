"""The one runctl grammar, shared by ``%runctl`` and the ``runctl`` shell command.

* argv is split at the first ``--`` *before* parsing: what follows belongs to the training script
  and is never parsed as runctl flags.
* runctl's flags accept no abbreviations (``allow_abbrev=False`` on every parser).
* Parsing never exits the process: usage errors raise :class:`UsageError` (exit 2) and ``--help``
  raises :class:`HelpRequested` carrying the text, which front ends print.
* Short forms: ``train``/``monitor``/``stop``/... mean ``aws train``/..., ``resources`` means
  ``resources list``.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import config, grammar_hints, grammar_types
from .errors import Step, UsageError, cmd
from .grammar_fleet import FLEET_TRAIN, add_fleet_parser
from .grammar_storage import STORAGE_VERBS, add_storage_parser
from .grammar_train import add_train_parser, check_train
from .models import validate_snapshot_id

SORT_CHOICES = ("cost", "hourly", "uptime", "type", "state", "launched", "id")  # costs.table.SORT_KEYS
BY_CHOICES = ("instance_type", "project", "state", "fleet")
AWS_VERBS = ("create", "start", "stop", "terminate", "wait", "status", "train", "monitor", "checkpoints", "runs")
SHORT_FORMS = {v: ("aws", v) for v in AWS_VERBS}
SHORT_FORMS.update(resources=("resources", "list"), storage=("storage", "list"))
GROUP_VERBS = {"resources": ("list", "summary"), "storage": STORAGE_VERBS}  # a group's own verbs: no short form
TOP_LEVEL = ("aws", "resources", "storage", "fleet", "local", "panel", "sandbox", "config")
SCRIPT_PATHS = (("aws", "train"), ("local", "train"), FLEET_TRAIN)  # the commands that take `-- ARGS`
FALSE_WORDS = {"false", "no", "0", "off"}
TRUE_WORDS = {"true", "yes", "1", "on"}
_REGION_SHAPE = re.compile(r"^[a-z]{2,5}(-[a-z]+)+-\d+$")


class HelpRequested(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


@dataclass
class Command:
    """A parsed command line: ``path`` like ("aws", "train"), options, and the script's own args."""

    path: tuple[str, ...]
    options: argparse.Namespace
    script_args: list[str] = field(default_factory=list)
    had_separator: bool = False

    def __getattr__(self, name: str):
        return getattr(self.options, name)


def _help_width() -> int:
    """argparse's own width (the terminal's, less 2) in a shell; 78 anywhere else — a notebook, a
    pipe — so ``%runctl --help`` prints the same text whatever terminal started the kernel."""
    stdout = sys.stdout
    try:
        tty = stdout is not None and stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return max(shutil.get_terminal_size().columns - 2, 40) if tty else 78


class _HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, **kwargs):
        kwargs.setdefault("width", _help_width())
        super().__init__(prog, **kwargs)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("add_help", True)
        super().__init__(*args, **kwargs)

    def print_help(self, file=None):  # --help: hand the text to the front end, don't exit
        raise HelpRequested(self.format_help())

    def exit(self, status=0, message=None):
        raise UsageError((message or "invalid command line").strip().splitlines()[0], [self._help_step()])

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}.", [self._help_step()])

    def _help_step(self) -> Step:
        words = self.prog.split()[1:]
        return cmd(" ".join([*words, "--help"]), "See the usage")


def _group_keys(text: str) -> str:
    keys = [k.strip() for k in text.split(",")]
    bad = [k for k in keys if k not in BY_CHOICES]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(repr(k) for k in bad)}: group by "
                                         f"{', '.join(BY_CHOICES)} (or several, comma-separated)")
    return text


def _normalise_bool_flags(argv: list[str]) -> list[str]:
    """``--sync-code=false`` → ``--no-sync-code`` (and ``=true`` → ``--sync-code``)."""
    out = []
    for word in argv:
        if word.startswith("--sync-code="):
            value = word.split("=", 1)[1].lower()
            if value in TRUE_WORDS:
                word = "--sync-code"
            elif value in FALSE_WORDS:
                word = "--no-sync-code"
            else:
                raise UsageError(f"--sync-code expects true or false, got {value!r}.",
                                 [cmd("aws train --help", "See the usage")])
        out.append(word)
    return out


_hours, _positive_int, _money, _duration = (grammar_types.hours, grammar_types.positive_int,
                                           grammar_types.money, grammar_types.duration)


def _add_world_flags(p: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    # Sub-commands repeat these with SUPPRESS so they never overwrite a value given before the command.
    p.add_argument("--region", default=default, help="AWS region (default: settings, then boto3's chain)")
    p.add_argument("--profile", default=default, type=grammar_types.text, help="AWS profile (default: settings, then boto3's chain)")


def _instance(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance_id", metavar="INSTANCE_ID", help="e.g. i-0abc123def4567890")


def build_parser() -> argparse.ArgumentParser:
    root = _Parser(prog="runctl", description="Run and watch ML training on AWS EC2 (or the embedded sandbox).",
                   epilog="Short forms: `train`, `monitor`, `stop`, … mean `aws …`; `resources`, `storage` mean `… list`. "
                          "Everything after the first `--` goes to the training script untouched.")
    root.add_argument("--sandbox", action="store_true", help="use the running embedded sandbox (shell)")
    root.add_argument("--debug", action="store_true", help="show full tracebacks")
    _add_world_flags(root, default=None)
    top = root.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    top.required = True

    aws = top.add_parser("aws", help="EC2 instances and training on them")
    verbs = aws.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    p = verbs.add_parser("create", help="launch an instance (tagged as runctl's)")
    p.add_argument("instance_type", metavar="INSTANCE_TYPE", type=grammar_types.instance_type,
                   help="e.g. t3.micro, g5.xlarge")
    p.add_argument("--wait", action="store_true", help="wait until running and the SSM agent is Online")
    p.add_argument("--ami", type=grammar_types.text,
                   help="image: an AMI ID, or an SSM parameter name (/…) holding one (default: the default_image "
                        "setting, else the type's own: the Deep Learning AMI with PyTorch for NVIDIA GPU types, "
                        "Amazon Linux 2023 of the type's architecture otherwise)")
    p.add_argument("--iam-instance-profile", type=grammar_types.text, help="instance profile name or ARN (needed for SSM on AWS)")
    p.add_argument("--key-name", type=grammar_types.text)
    p.add_argument("--security-group", action="append", type=grammar_types.text, help="security group ID (repeatable)")
    p.add_argument("--subnet", type=grammar_types.text, help="subnet ID")
    p.add_argument("--disk-gb", type=_positive_int, default=30, help="root volume size (default: 30)")
    p.add_argument("--name", type=grammar_types.text, help="Name tag")
    p.add_argument("--project", type=grammar_types.project, help="runctl:project tag (default: settings or folder name)")
    p.add_argument("--spot", action="store_true", help="launch spot capacity")
    p.add_argument("--max-price", type=_money, help="spot max $/hr (default: the on-demand price)")
    p.add_argument("--fallback-on-demand", action="store_true", help="use on-demand if spot is unavailable")
    p.add_argument("--from-snapshot", metavar="SNAPSHOT_ID",
                   help="attach this EBS snapshot (e.g. one `terminate --snapshot` saved) as an extra volume")
    _add_world_flags(p)

    for verb, text in (("start", "start a stopped instance"), ("wait", "wait for a state")):
        p = verbs.add_parser(verb, help=text)
        _instance(p)
        if verb == "start":
            p.add_argument("--wait", action="store_true", help="wait until running and SSM Online")
        else:
            p.add_argument("--state", choices=("running", "ssm", "stopped", "terminated"), default="ssm",
                           help="state to wait for (default: ssm = running and SSM agent Online)")
        _add_world_flags(p)

    p = verbs.add_parser("stop", help="checkpoint and upload, then stop (spot: then terminate)")
    _instance(p)
    p.add_argument("--force", action="store_true", help="don't wait for the training to checkpoint")
    p.add_argument("--wait", action="store_true", help="wait until stopped")
    _add_world_flags(p)

    p = verbs.add_parser("terminate", help="terminate (refused while checkpoints have no S3 copy)")
    _instance(p)
    p.add_argument("--force", action="store_true", help="terminate even if checkpoints would be lost")
    p.add_argument("--snapshot", action="store_true",
                   help="when a checkpoint could be lost, save the disk as EBS snapshots first")
    p.add_argument("--wait", action="store_true", help="wait until terminated")
    _add_world_flags(p)

    p = verbs.add_parser("status", help="state, uptime, training and guardian of an instance")
    _instance(p)
    _add_world_flags(p)

    add_train_parser(verbs, _instance, _add_world_flags)

    p = verbs.add_parser("monitor", help="show the log tail, or follow it")
    _instance(p)
    p.add_argument("--follow", action="store_true", help="follow the log until the run ends")
    p.add_argument("--run", dest="run_id", type=grammar_types.run_id, help="show the log of this run (default: the newest)")
    p.add_argument("--lines", type=_positive_int, default=40, help="lines of tail to show (default: 40)")
    p.add_argument("--project", type=grammar_types.project)
    _add_world_flags(p)

    for verb, text in (("checkpoints", "list checkpoints on the instance and in S3"),
                       ("runs", "the run history of an instance")):
        p = verbs.add_parser(verb, help=text)
        _instance(p)
        p.add_argument("--project", type=grammar_types.project)
        p.add_argument("--bucket", type=grammar_types.text)
        _add_world_flags(p)

    res = top.add_parser("resources", help="what runs and what it costs")
    rverbs = res.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    rverbs.required = True
    for verb, text in (("list", "one row per instance, with costs and warnings"),
                       ("summary", "grouped by instance type / project / state")):
        p = rverbs.add_parser(verb, help=text)
        p.add_argument("--platform", choices=("aws",), default="aws")
        p.add_argument("--filter", dest="state_filter", metavar="STATE", type=grammar_types.text, help="running, stopped, …")
        p.add_argument("--project", type=grammar_types.project, help="only this runctl project")
        p.add_argument("--all-regions", action="store_true", help="query every enabled region concurrently")
        p.add_argument("--regions", help="comma-separated regions, queried concurrently")
        if verb == "list":
            p.add_argument("--sort", default="cost", choices=SORT_CHOICES, help=", ".join(SORT_CHOICES))
        else:
            p.add_argument("--by", default="instance_type", type=_group_keys,
                           help=f"{', '.join(BY_CHOICES)}, or several: project,state")
            p.add_argument("--plot", action="store_true", help="also draw cost per type and project")
        p.add_argument("--export", choices=("csv", "html", "json"))
        p.add_argument("--export-file", type=grammar_types.local_path, help="where to write the export")
        _add_world_flags(p)

    add_storage_parser(top, _Parser, _add_world_flags)
    add_fleet_parser(top, _Parser, _add_world_flags)
    local = top.add_parser("local", help="run the same launcher on this machine")
    lverbs = local.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    lverbs.required = True
    p = lverbs.add_parser("train", help="train locally with the same safety and logs")
    p.add_argument("script", metavar="SCRIPT", type=grammar_types.local_path)
    p.add_argument("--wait", action="store_true")
    p.add_argument("--project", type=grammar_types.project)

    panel = top.add_parser("panel", help="widget panels: resources, or training on an instance")
    panel.add_argument("kind", nargs="?", choices=("resources", "train"), default="resources")
    panel.add_argument("instance_id", nargs="?", metavar="INSTANCE_ID")
    panel.add_argument("--refresh", type=_positive_int, metavar="SECONDS", help="auto-refresh every N seconds")

    sb = top.add_parser("sandbox", help="the embedded local AWS world")
    sverbs = sb.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sverbs.required = True
    p = sverbs.add_parser("start", help="start (or attach to) the background sandbox")
    p.add_argument("--fresh", action="store_true", help="begin a clean world")
    p.add_argument("--dir", help="sandbox folder (default: $RUNCTL_SANDBOX_DIR or ~/.runctl/sandbox)")
    p.add_argument("--freeze-clock", metavar="ISO_TIME", type=grammar_types.instant, help="freeze the sandbox clock at this instant")
    p = sverbs.add_parser("stop", help="end the sandbox and every instance process")
    p.add_argument("--dir")
    p = sverbs.add_parser("status", help="is a sandbox running, and where")
    p.add_argument("--dir")
    p = sverbs.add_parser("age", help="make an instance look as if it has run HOURS longer")
    _instance(p)
    p.add_argument("hours", type=_hours, metavar="HOURS")
    p = sverbs.add_parser("interrupt", help="post a spot interruption notice to an instance")
    _instance(p)
    p.add_argument("--notice-seconds", type=_positive_int, default=120)
    p = sverbs.add_parser("clock", help="show, freeze or move the sandbox clock")
    p.add_argument("--freeze", metavar="ISO_TIME", type=grammar_types.instant)
    p.add_argument("--advance", type=_duration, metavar="DURATION")
    p.add_argument("--unfreeze", action="store_true")

    def listed(prog: str) -> argparse.HelpFormatter:  # the settings list (epilog) keeps its lines
        return argparse.RawDescriptionHelpFormatter(prog, width=_help_width())
    settings = config.settings_help()
    cfg = top.add_parser("config", help="settings and where they come from", epilog=settings, formatter_class=listed)
    cverbs = cfg.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser, required=True)
    cverbs.add_parser("show", help="effective values and their sources")
    p = cverbs.add_parser("set", help="write a value into the user file", epilog=settings, formatter_class=listed)
    p.add_argument("name", metavar="NAME")
    p.add_argument("value", metavar="VALUE")
    p = cverbs.add_parser("unset", help="remove a value from the user file", epilog=settings, formatter_class=listed)
    p.add_argument("name", metavar="NAME")
    return root


_PARSER: argparse.ArgumentParser | None = None


def parser() -> argparse.ArgumentParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = build_parser()
    return _PARSER


def split_script_args(argv: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """Split at the first ``--``: (runctl argv, script args, whether ``--`` was present)."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:], True
    return argv, [], False


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore knows (all partitions), from its bundled endpoint data: no network."""
    from botocore.session import get_session  # lazy: parsing imports no boto3 unless a region is given

    session = get_session()
    return frozenset(r for p in session.get_available_partitions()
                     for r in session.get_available_regions("ec2", partition_name=p))


def _close_regions(name: str, known: frozenset[str]) -> list[str]:
    """Up to three known regions close to ``name``, closest first (ties alphabetically)."""
    scored = [(difflib.SequenceMatcher(None, name, r).ratio(), r) for r in known]
    return [r for score, r in sorted(scored, key=lambda x: (-x[0], x[1])) if score >= 0.75][:3]


def _with_region(word: str, bad: str, good: str) -> str:
    """``word`` with the region ``bad`` replaced by ``good`` (also inside ``--region=…`` and lists)."""
    head, eq, value = word.rpartition("=") if word.startswith("--") and "=" in word else ("", "", word)
    parts = [good if p.strip() == bad else p for p in value.split(",")]
    return head + eq + ",".join(parts)


def check_region(name: str, argv: Sequence[str] | None = None, flag: str = "--region") -> None:
    """Raise a :class:`UsageError` unless ``name`` is a region botocore knows (no AWS call).

    ``argv`` (the command line, without ``--``) lets the steps repeat the command with the closest
    region; without it they show ``resources list <flag> <region>``.
    """
    known = known_regions()
    if name in known:
        return
    close = _close_regions(name, known)
    steps: list[Step] = []
    if close:
        names = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
        steps.append(Step(f"Did you mean {names}?"))
        if argv:
            fixed = shlex.join(_with_region(w, name, close[0]) for w in argv if w != "--debug")
        else:
            fixed = f"resources list {flag} {close[0]}"
        steps.append(cmd(fixed, "For example"))
    else:
        steps.append(Step("Region names look like us-east-1, eu-west-2 or ap-southeast-1"))
    steps.append(cmd("resources list --all-regions", "Or list the instances of every enabled region"))
    if _REGION_SHAPE.match(name):
        import botocore

        steps.append(Step(f"If {name} is a region newer than botocore {botocore.__version__}, upgrade botocore"))
    raise UsageError(f"'{name}' is not an AWS region.", steps)


def split_region_list(text: str) -> list[str]:
    """``"us-east-1, eu-west-1"`` → ``["us-east-1", "eu-west-1"]``."""
    return [r.strip() for r in text.split(",") if r.strip()]


def _check_region_flags(ns: argparse.Namespace, argv: Sequence[str]) -> None:
    region = getattr(ns, "region", None)
    if region is not None:  # `--region ''` too: an empty flag is a mistake, not "no region"
        check_region(region, argv, "--region")
    regions = getattr(ns, "regions", None)
    if regions is not None and not split_region_list(regions):
        raise UsageError("--regions names no region.", [cmd("resources list --regions us-east-1,eu-west-1",
                                                              "Name them, comma-separated"),
                                                          cmd("resources list --all-regions", "Or query them all")])
    for name in split_region_list(regions or ""):
        check_region(name, argv, "--regions")


def _expand_short_forms(argv: list[str]) -> list[str]:
    # Leading global flags may precede the command word.
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in ("--region", "--profile") else 1
    if i < len(argv) and argv[i] in SHORT_FORMS:
        group, verb = SHORT_FORMS[argv[i]]
        rest = argv[i + 1:]
        if rest and rest[0] in GROUP_VERBS.get(argv[i], ()):
            return argv[:i] + [argv[i], *rest]
        return argv[:i] + [group, verb, *rest]
    return argv


def parse(argv: Sequence[str]) -> Command:
    """Parse a runctl command line (already split into words)."""
    own, script_args, had_sep = split_script_args(argv)
    own = _normalise_bool_flags(_expand_short_forms(own))
    if not own or own == ["--debug"]:
        raise HelpRequested(parser().format_help())
    ns, extras = parser().parse_known_args(own)
    path = tuple(x for x in (ns.group, getattr(ns, "verb", None)) if x)
    if ns.group == "panel":
        path = ("panel",)
    if extras:
        words, near = " ".join(path), grammar_hints.suggestions(parser(), path, argv, extras)
        if path in SCRIPT_PATHS and not had_sep:
            flags = " ".join(extras)
            script = getattr(ns, "script", "SCRIPT")
            target = getattr(ns, "instance_id", None) or getattr(ns, "fleet", None) or ""
            target += " " if target else ""
            raise UsageError(
                f"'{flags}' is not a runctl flag; the script's own flags go after `--`.",
                [*near, cmd(f"{words} {target}{script} -- {flags}", "Put the script's flags after --"),
                 cmd(f"{words} --help", "See runctl's own flags")],
            )
        raise UsageError(f"Unknown argument(s) for `{words}`: {' '.join(extras)}.",
                         [*near, cmd(f"{words} --help", "See the usage")])
    if script_args and path not in SCRIPT_PATHS:
        raise UsageError(
            f"`{' '.join(path)}` takes no script arguments, but some followed `--`.",
            [cmd(f"{' '.join(path)} --help", "See the usage")],
        )
    _check_region_flags(ns, own)
    if getattr(ns, "from_snapshot", None) is not None:
        validate_snapshot_id(ns.from_snapshot)
    if path == ("aws", "train"):
        check_train(ns)
    return Command(path=path, options=ns, script_args=script_args, had_separator=had_sep)


def help_text(words: Sequence[str] = ()) -> str:
    try:
        parse([*words, "--help"])
    except HelpRequested as h:
        return h.text
    raise AssertionError("unreachable")


__all__ = ["Command", "HelpRequested", "parse", "split_script_args", "help_text", "Step", "check_region",
           "known_regions", "split_region_list"]
