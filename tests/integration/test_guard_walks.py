"""Property: random walks of train / stop / start / terminate, runctl's and others' (the console, a
guardian), across two projects on one disk, never end with a checkpoint lost: whatever was on the
disk when a terminate went through has a verified copy in S3. (Seeded: the same walks every run.)"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from sandbox_env import fresh_instance
from test_guard import BUCKET, _boto_stop_start, _disk, _train

from runctl_jupyter import api
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import GuardRefused


def _on_disk(root: Path) -> dict[tuple[str, str], str]:
    found = {}
    for path in (root / "runctl").glob("*/checkpoints/**/*"):
        if path.is_file() and not path.name.startswith("."):
            project = path.relative_to(root / "runctl").parts[0]
            rel = path.relative_to(root / "runctl" / project / "checkpoints").as_posix()
            found[(project, rel)] = hashlib.md5(path.read_bytes()).hexdigest()
    return found


def _in_s3(ctx, project: str, rel: str, md5: str) -> bool:
    """A copy whose bytes (read back, not the checksum runctl stored) are the checkpoint's."""
    return any(name.split("/", 1)[-1] == rel and hashlib.md5(s3.get_bytes(ctx, BUCKET, obj.key)).hexdigest() == md5
               for name, obj in s3.list_objects(ctx, BUCKET, f"runctl/{project}/checkpoints/").items())


@pytest.mark.parametrize("seed", range(1, 6))
def test_no_walk_loses_a_checkpoint(ctx, sandbox, seed: int) -> None:
    rng = random.Random(seed)
    taken: list[str] = []
    with fresh_instance(ctx, "walk") as iid:
        disk = _disk(sandbox, iid)
        for step in range(8):
            state = api.status(ctx, iid).state
            if state == "running":
                action = rng.choice(["train", "train", "stop", "stop-elsewhere", "terminate"])
            else:
                action = rng.choice(["start", "start-elsewhere", "terminate"])
            taken.append(action)
            if action == "train":
                _train(ctx, iid, rng.choice(["walk-a", "walk-b"]), seed * 100 + step)
            elif action == "stop":
                api.stop(ctx, iid, wait=True)
            elif action == "stop-elsewhere":  # the console or a guardian: runctl sees nothing
                _boto_stop_start(ctx, iid, "stop")
            elif action in ("start", "start-elsewhere"):
                if action == "start":
                    api.start(ctx, iid, wait=True)
                else:
                    _boto_stop_start(ctx, iid, "start")
                    api.wait(ctx, iid)
            else:
                before = _on_disk(disk)
                try:
                    api.terminate(ctx, iid, wait=True)
                except GuardRefused:
                    continue  # refused on doubt: the disk is still there
                lost = [key for key, md5 in before.items() if not _in_s3(ctx, *key, md5)]
                assert not lost, f"walk {taken} lost {lost}"
                break
    assert taken  # the walk ran
