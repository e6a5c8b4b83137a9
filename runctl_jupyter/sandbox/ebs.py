"""EBS snapshots with content: what a snapshot holds, and a new instance that gets it back.

moto keeps snapshots as records only. The sandbox gives them the disk they saved:
- CreateSnapshot of an instance's root volume copies the instance folder's ``runctl/`` tree (its
  disk, as far as runctl is concerned) to ``<sandbox>/snapshots/<snap-id>/runctl/``; a snapshot of
  a volume that was itself made from a snapshot holds what that one held. StartTime is the sandbox
  clock's (moto stamps the machine's), so snapshot costs follow the clock like instance costs.
- RunInstances with a block device made from such a snapshot (``create --from-snapshot``) copies
  the checkpoints it holds, ``runctl/<project>/checkpoints/``, into the new instance's own tree,
  never over a file already there. On AWS the volume is attached and the user mounts it; the
  sandbox has no block devices, so it does the copy (a gap the README lists).
- DeleteSnapshot forgets the content.
Copies are made outside the moto lock, before the response is sent.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from . import moto_seams
from .protocol import AwsRequest, RawResponse
from .world import World

AnyResponse = Response | RawResponse
Forward = Callable[[dict[str, Any]], AnyResponse]
_SNAPSHOT_ID = re.compile(r"<snapshotId>(snap-[0-9a-f]+)</snapshotId>")


class EbsSnapshots:
    def __init__(self, world: World, forward: Forward) -> None:
        self.world = world
        self.forward = forward
        self.actions = {"CreateSnapshot": self.create_snapshot, "DeleteSnapshot": self.delete_snapshot}

    def content(self, snapshot_id: str) -> Path:
        return self.world.snapshots_dir / snapshot_id / "runctl"

    def create_snapshot(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        with self.world.moto_lock:
            resp = self.forward(environ)
            if resp.status_code != 200:
                return resp
            found = _SNAPSHOT_ID.search(resp.get_data(as_text=True))
            if found is None:
                return resp
            snapshot_id = found.group(1)
            moto_seams.set_snapshot_start_time(snapshot_id, req.region, self.world.clock.now())
            instance_id, is_root, made_from = moto_seams.snapshot_source(snapshot_id, req.region)
        source: Path | None = None
        if instance_id is not None and is_root:
            source = self.world.instance_dir(instance_id) / "runctl"
        elif made_from is not None:
            source = self.content(made_from)
        target = self.content(snapshot_id)
        if source is not None and source.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target, symlinks=True)
        return resp

    def delete_snapshot(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        resp = self.forward(environ)
        snapshot_id = req.params.get("SnapshotId", "")
        if resp.status_code == 200 and re.fullmatch(r"snap-[0-9a-f]+", snapshot_id):
            shutil.rmtree(self.world.snapshots_dir / snapshot_id, ignore_errors=True)
        return resp

    def restores_for(self, inst: Any) -> list[tuple[str, str]]:
        """(instance ID, snapshot ID) for each volume of a new instance made from a snapshot with
        content (the caller holds the moto lock)."""
        return [(inst.id, snapshot_id) for _device, snapshot_id in moto_seams.restored_snapshots(inst)
                if self.content(snapshot_id).is_dir()]

    def restore(self, pairs: list[tuple[str, str]]) -> None:
        """Copy each snapshot's checkpoint folders into the instance's runctl tree (existing files win)."""
        for instance_id, snapshot_id in pairs:
            tree = self.world.instance_dir(instance_id) / "runctl"
            for folder in sorted(self.content(snapshot_id).glob("*/checkpoints")):
                if folder.is_dir():
                    _copy_missing(folder, tree / folder.parent.name / "checkpoints")


def _copy_missing(source: Path, target: Path) -> None:
    """``cp -an source/. target/``: what is already in ``target`` stays."""
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir() and not path.is_symlink():
            dest.mkdir(parents=True, exist_ok=True)
        elif not dest.exists() and not dest.is_symlink():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest, follow_symlinks=False)
