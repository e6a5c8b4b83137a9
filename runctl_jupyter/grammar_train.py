"""``aws train`` in the runctl grammar (kept apart so grammar.py stays small): the script, sync,
guardian caps, and how the script runs on the instance (``--python``, ``--torchrun``
``[--nproc-per-node N|gpu]``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import grammar_types
from .config import PYTHON_NAME_RE
from .errors import UsageError, cmd

MAX_NPROC = 1024


def interpreter(text: str) -> str:
    """``--python``: an absolute path on the instance, or a name like ``python3.12`` on its PATH."""
    grammar_types.text(text)
    if text.startswith("/"):
        if any(c.isspace() for c in text):
            raise argparse.ArgumentTypeError(f"{text[:60]!r} holds spaces (give the interpreter's path without them)")
        return text
    if not PYTHON_NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected an absolute path on the instance (e.g. /opt/pytorch/bin/python) "
                                         f"or a name like python3.12, got {text[:60]!r}")
    return text


def nproc(text: str) -> str:
    """``--nproc-per-node``: a number of processes, or ``gpu`` (one per GPU of the instance)."""
    if text == "gpu":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes or 'gpu', got {text[:60]!r}") from None
    if not 0 < value <= MAX_NPROC:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_NPROC}")
    return str(value)


def add_train_parser(verbs, instance: Callable[[argparse.ArgumentParser], None],
                     add_world_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    p = verbs.add_parser("train", help="start a training script on an instance",
                         description="Start SCRIPT on the instance. Put the script's own flags after `--`.")
    instance(p)
    p.add_argument("script", metavar="SCRIPT", type=grammar_types.local_path, help="local path of the training script")
    p.add_argument("--sync-code", dest="sync_code", action="store_true", default=True,
                   help="sync the project to the instance first (default: on; --sync-code=false to skip)")
    p.add_argument("--no-sync-code", dest="sync_code", action="store_false", help="don't sync the project")
    p.add_argument("--wait", action="store_true", help="block until the run ends (Ctrl-C/interrupt detaches)")
    p.add_argument("--project", type=grammar_types.project, help="project name (default: settings or the project folder's name)")
    p.add_argument("--bucket", type=grammar_types.text, help="S3 bucket for the code bundle and checkpoint copies")
    p.add_argument("--project-root", metavar="DIR", type=grammar_types.local_path,
                   help="the folder to sync (default: the nearest with .git, pyproject.toml, setup.py, setup.cfg, "
                        "requirements.txt or .runctl.toml, else the script's own)")
    p.add_argument("--resume", metavar="auto|PATH", type=grammar_types.text, help="resume from a checkpoint ('auto' = newest, also from S3)")
    p.add_argument("--autostop", type=grammar_types.duration, metavar="DURATION", help="stop the instance once idle this long (30m, 2h)")
    p.add_argument("--max-hours", type=grammar_types.hours, help="budget cap: stop after this many hours")
    p.add_argument("--max-cost", type=grammar_types.money, help="budget cap: stop once the run cost this many dollars")
    p.add_argument("--python", metavar="PATH", type=interpreter,
                   help="the interpreter on the instance (default: the python setting, else the image's PyTorch "
                        "environment such as /opt/pytorch/bin/python, else python3)")
    p.add_argument("--torchrun", action="store_true",
                   help="run the script under PyTorch's launcher: python -m torch.distributed.run --standalone")
    p.add_argument("--nproc-per-node", metavar="N|gpu", type=nproc,
                   help="with --torchrun: processes on the instance (default: gpu, one per GPU)")
    add_world_flags(p)


def check_train(ns: argparse.Namespace) -> None:
    """What the parser alone cannot say: ``--nproc-per-node`` means something only with ``--torchrun``."""
    if ns.nproc_per_node is not None and not ns.torchrun:
        raise UsageError("--nproc-per-node only applies with --torchrun.",
                         [cmd(f"aws train {ns.instance_id} {ns.script} --torchrun --nproc-per-node {ns.nproc_per_node}",
                              "Add --torchrun")])
