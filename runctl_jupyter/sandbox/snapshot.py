"""A JSON-able picture of the whole world: instances, S3 objects, instance disks.

Equal snapshots before and after a refused call prove the call changed nothing.
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from pathlib import Path
from typing import Any

from . import moto_seams
from .clock import iso
from .world import World


def _disk(root: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            entries[rel + "/"] = f"symlink:{os.readlink(path)}" if path.is_symlink() else "dir"
        for name in filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[rel] = f"symlink:{os.readlink(path)}"
                continue
            digest = hashlib.sha256()
            try:
                with path.open("rb") as handle:
                    for chunk in iter(partial(handle.read, 1 << 20), b""):
                        digest.update(chunk)
            except OSError as exc:  # e.g. a file removed while walking
                entries[rel] = f"unreadable:{exc.__class__.__name__}"
                continue
            entries[rel] = digest.hexdigest()
    return dict(sorted(entries.items()))


def take(world: World) -> dict[str, Any]:
    with world.moto_lock:
        facts = [moto_seams.describe(inst) for inst in moto_seams.all_instances()]
        s3 = moto_seams.s3_objects()
    instances = {
        f["id"]: {"state": f["state"], "region": f["region"], "type": f["type"], "az": f["az"],
                  "tags": dict(sorted(f["tags"].items())), "launch_time": iso(f["launch_time"]),
                  "lifecycle": f["lifecycle"]}
        for f in sorted(facts, key=lambda f: f["id"])
    }
    disks = {}
    if world.instances_dir.is_dir():
        for entry in sorted(world.instances_dir.iterdir()):
            if entry.is_dir():
                disks[entry.name] = _disk(entry)
    return {"instances": instances, "s3": s3, "disks": disks}
