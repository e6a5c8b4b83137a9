"""The ``fleet`` commands of the runctl grammar (kept apart so grammar.py stays small).

``fleet create NAME INSTANCE_TYPE --nodes N [--spot] [--wait]`` — N instances that train together;
``fleet train NAME SCRIPT [--torchrun [--nproc-per-node P]] [--wait] [--all-nodes] [--autostop D]
[--max-hours H] [--max-cost USD] -- ARGS`` — one run on every node, each node's guardian watching the
others; ``fleet status|monitor|stop|terminate NAME`` — as ``aws …`` does for one instance, for
every node.
"""

from __future__ import annotations

import argparse
import re

from . import grammar_types

FLEET_VERBS = ("create", "train", "status", "monitor", "stop", "terminate")
FLEET_TRAIN = ("fleet", "train")
FLEET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def fleet_name(text: str) -> str:
    """It becomes tags and the names of the fleet's security group and placement group."""
    if not FLEET_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a fleet name (1-40 letters, digits, '-' or '_', "
                                         "starting with a letter or digit)")
    return text


def nproc(text: str) -> str:
    """``--nproc-per-node``: a number of processes, or ``gpu`` (one per GPU: torchrun counts them)."""
    if text == "gpu":
        return text
    return str(grammar_types.positive_int(text))


def _port(text: str) -> int:
    value = grammar_types.positive_int(text)
    if not 1024 <= value <= 65535:
        raise argparse.ArgumentTypeError("expected a port between 1024 and 65535")
    return value


def add_fleet_parser(top, parser_class, add_world_flags) -> None:
    fl = top.add_parser("fleet", help="several instances that train one run together (multi-node)")
    verbs = fl.add_subparsers(dest="verb", metavar="VERB", parser_class=parser_class)
    verbs.required = True

    def named(verb: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        p = verbs.add_parser(verb, help=text, description=description or text[0].upper() + text[1:] + ".")
        p.add_argument("fleet", metavar="NAME", type=fleet_name, help="the fleet's name (e.g. ddp-1)")
        return p

    p = named("create", "launch N instances as one fleet (all of them or none)",
              "Launch N instances in one AZ, tagged runctl:fleet=NAME, in a security group that lets members reach "
              "each other and nothing else in (and a cluster placement group for GPU types).")
    p.add_argument("instance_type", metavar="INSTANCE_TYPE", type=grammar_types.instance_type,
                   help="e.g. t3.micro, g5.12xlarge")
    p.add_argument("--nodes", type=grammar_types.positive_int, required=True, help="how many instances")
    p.add_argument("--spot", action="store_true", help="launch spot capacity (one-time: a node can only be terminated)")
    p.add_argument("--wait", action="store_true", help="wait until every node is running and SSM Online")
    p.add_argument("--project", type=grammar_types.project, help="runctl:project tag (default: settings or folder name)")
    p.add_argument("--ami", type=grammar_types.text, help="image ID (default: the region's current Amazon Linux 2023)")
    p.add_argument("--iam-instance-profile", type=grammar_types.text, help="instance profile (needed for SSM on AWS)")
    p.add_argument("--subnet", type=grammar_types.text, help="subnet ID (default: the default VPC's, one AZ)")
    p.add_argument("--security-group", action="append", type=grammar_types.text,
                   help="another security group for every node (repeatable)")
    p.add_argument("--disk-gb", type=grammar_types.positive_int, default=30, help="root volume size (default: 30)")
    add_world_flags(p)

    p = named("train", "start a training script on every node of a fleet",
              "Start SCRIPT on every node with one run id (code synced once). Each node's process gets MASTER_ADDR, "
              "MASTER_PORT, NODE_RANK, NNODES (and RANK, WORLD_SIZE, LOCAL_RANK without --torchrun). Put the "
              "script's own flags after `--`.")
    p.add_argument("script", metavar="SCRIPT", type=grammar_types.local_path, help="local path of the training script")
    p.add_argument("--torchrun", action="store_true", help="run it under torchrun (torch.distributed.run), multi-node")
    p.add_argument("--nproc-per-node", type=nproc, metavar="N|gpu", help="torchrun workers per node (default: gpu on "
                   "GPU types, else 1)")
    p.add_argument("--wait", action="store_true", help="follow until the run ends (Ctrl-C/interrupt detaches)")
    p.add_argument("--all-nodes", action="store_true", help="stream every node's log, lines prefixed [node i]")
    p.add_argument("--sync-code", dest="sync_code", action="store_true", default=True,
                   help="sync the project (once, for every node) first (default: on)")
    p.add_argument("--no-sync-code", dest="sync_code", action="store_false", help="don't sync the project")
    p.add_argument("--project", type=grammar_types.project)
    p.add_argument("--bucket", type=grammar_types.text, help="S3 bucket for the code bundle and checkpoint copies")
    p.add_argument("--project-root", metavar="DIR", type=grammar_types.local_path, help="the folder to sync")
    p.add_argument("--master-port", type=_port, default=29500, help="the rendezvous port on node 0 (default: 29500)")
    p.add_argument("--autostop", type=grammar_types.duration, metavar="DURATION",
                   help="stop each node's instance once its run has ended this long (30m, 2h)")
    p.add_argument("--max-hours", type=grammar_types.hours, help="budget cap: stop the run (every node) after this many hours")
    p.add_argument("--max-cost", type=grammar_types.money,
                   help="budget cap for the whole fleet: stop once the run cost this many dollars on all nodes together")
    add_world_flags(p)

    p = named("status", "every node: state, SSM, private address, newest run")
    add_world_flags(p)

    p = named("monitor", "the fleet run's state on every node and node 0's log tail, or follow it")
    p.add_argument("--follow", action="store_true", help="follow until the run ends (a failed node ends the others)")
    p.add_argument("--all-nodes", action="store_true", help="every node's log, lines prefixed [node i]")
    p.add_argument("--run", dest="run_id", type=grammar_types.run_id, help="this run (default: node 0's newest)")
    p.add_argument("--lines", type=grammar_types.positive_int, default=40, help="lines of tail per node (default: 40)")
    p.add_argument("--project", type=grammar_types.project)
    add_world_flags(p)

    p = named("stop", "stop every node (each checkpoints and uploads first)")
    p.add_argument("--force", action="store_true", help="don't wait for the trainings to checkpoint")
    p.add_argument("--wait", action="store_true", help="wait until every node is stopped")
    add_world_flags(p)

    p = named("terminate", "terminate every node (refused while a checkpoint on any node has no S3 copy)")
    p.add_argument("--force", action="store_true", help="terminate even if checkpoints would be lost")
    p.add_argument("--snapshot", action="store_true", help="save the disks of nodes in doubt as EBS snapshots first")
    add_world_flags(p)
