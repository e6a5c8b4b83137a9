"""3. A ~20 MB log followed live: nothing lost or doubled, bytes moved, API calls, added latency.

A generated script prints ~20 MB of realistic training-log lines (1 in 7 with multibyte UTF-8) as
fast as it can; ``training.start_training`` launches it and ``training.follow_run`` follows it
(every ``fetch`` is timed and decoded on the side). The followed text is compared with the log file
on the instance's disk (``instances/<iid>/runctl/<project>/runs/<run-id>/log`` under the sandbox
folder): lost / duplicated bytes are counted line by line (every line is unique).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from .common import Bench, Metric

LOG_MB = 20

LOG_SCRIPT = r'''
"""Print about TARGET bytes of realistic training log lines, quickly (benchmark helper)."""
import random
import sys

target = int(sys.argv[1])
rnd = random.Random(7)
out = sys.stdout.buffer
written = step = 0
parts = []
while written < target:
    step += 1
    line = (f"2026-11-05 12:{(step // 3600) % 60:02d}:{(step // 60) % 60:02d}.{step % 1000:03d} INFO "
            f"[train] step={step:08d} loss={rnd.random() * 2:.6f} lr=3.0e-04 "
            f"grad_norm={rnd.random() * 5:.4f} tok/s={rnd.randint(9000, 15000)} mem=14.2GiB")
    if step % 7 == 0:
        line += " — ünïcødé ✓ 日本語のログ 🚀"
    if step % 5000 == 0:
        line = f"epoch {step // 5000}/30 step={step:08d} val_loss={rnd.random():.4f}"
    data = (line + "\n").encode("utf-8")
    parts.append(data)
    written += len(data)
    if len(parts) >= 2000:
        out.write(b"".join(parts))
        parts.clear()
out.write(b"".join(parts))
out.flush()
'''


def _line_diff(expected: bytes, got: bytes) -> tuple[int, int]:
    """(bytes lost, bytes duplicated), counted over lines (each line of the log is unique)."""
    if expected == got:
        return 0, 0
    want, have = Counter(expected.splitlines(True)), Counter(got.splitlines(True))
    lost = sum(len(k) * n for k, n in (want - have).items())
    dup = sum(len(k) * n for k, n in (have - want).items())
    return lost, dup


def make_log_project(folder: Path) -> Path:
    root = folder / "logproj"
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "logproj"\nversion = "0.1.0"\n')
    (root / "spew.py").write_text(LOG_SCRIPT)
    return root / "spew.py"


def stream(ctx, iid: str, script: Path, size: int, sandbox_dir: Path, project: str = "logproj") -> dict:
    """Run ``script size`` on ``iid`` and follow it; returns the measurements (used by tests too)."""
    from runctl_jupyter import logs, training

    launch = training.start_training(ctx, iid, script, [str(size)], project=project)
    base = training.tail_fetcher(ctx, launch.instance_id, launch.log_path)
    fetches: list[tuple[float, int, int, int | None]] = []  # (time, chunk end, size, exit code)

    def fetch(offset: int, max_bytes: int) -> str:
        out = base(offset, max_bytes)
        chunk = logs.decode_chunk(out)
        fetches.append((time.time(), chunk.end, chunk.size, chunk.exit_code))
        return out

    pieces: list[str] = []
    before = dict(ctx.calls)
    t0 = time.perf_counter()
    result = training.follow_run(ctx, launch, pieces.append, fetch=fetch)
    wall = time.perf_counter() - t0
    returned = time.time()
    calls = {k: v - before.get(k, 0) for k, v in ctx.calls.items() if v - before.get(k, 0)}
    run_dir = sandbox_dir / "instances" / iid / "runctl" / project / "runs" / launch.run_id
    on_disk = (run_dir / "log").read_bytes()
    followed = "".join(pieces).encode("utf-8")
    lost, dup = _line_diff(on_disk, followed)
    final = len(on_disk)
    got_all = next(i for i, f in enumerate(fetches) if f[1] >= final)
    ended_at = os.stat(run_dir / "exit_code").st_mtime
    last_write = os.stat(run_dir / "log").st_mtime
    return {"launch": launch, "result": result, "log_bytes": final, "lost": lost, "dup": dup,
            "followed": followed, "on_disk": on_disk, "calls": calls, "wall": wall,
            "polls_after_last_byte": len(fetches) - 1 - got_all,
            "polls_after_last_write": sum(1 for f in fetches if f[0] > last_write), "seconds_after_exit": returned - ended_at,
            "fetches": len(fetches)}


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api

    script = make_log_project(bench.scratch / "logs")
    ctx = bench.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="logproj").instance_id
    try:
        m = stream(ctx, iid, script, LOG_MB * 1_000_000, bench.sandbox_dir)
    finally:
        api.terminate(ctx, iid, force=True)
    mb = m["log_bytes"] / 1e6
    total_calls = sum(m["calls"].values())
    ratio = m["result"].encoded_chars / m["log_bytes"]
    group = f"log streaming ({mb:.1f} MB log)"
    return [
        Metric("log bytes lost", m["lost"], "B", 0, op="<=", group=group),
        Metric("log bytes duplicated", m["dup"], "B", 0, op="<=", group=group),
        Metric("bytes moved / log size", round(ratio, 3), "", 1.4, group=group,
               note="sum of StandardOutputContent lengths (FollowResult.encoded_chars); gzip+base64 chunks"),
        Metric("API calls per MB of log", round(total_calls / mb, 2), "", None, group=group,
               note=", ".join(f"{k}={v}" for k, v in sorted(m["calls"].items()))),
        Metric("tail fetches (SSM round trips)", m["fetches"], "", None, group=group),
        Metric("follow throughput", round(mb / m["wall"], 2), "MB/s", None, group=group),
        Metric("added latency: polls after the last byte was read", m["polls_after_last_byte"], "", None,
               group=group, note="polls between the chunk carrying the final byte and the follower returning"),
        Metric("polls after the log's last byte was written", m["polls_after_last_write"], "", None,
               group=group, note="includes catching up: the script writes 20 MB faster than it is read"),
        Metric("added latency: run exit → follower returned", round(m["seconds_after_exit"] * 1000), "ms", None,
               group=group, note="exit_code file mtime to follow_run's return"),
    ]
