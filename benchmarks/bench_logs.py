"""3. A ~20 MB log followed live: nothing lost or doubled, bytes moved, API calls, added latency.

A generated script prints ~20 MB of realistic training-log lines (1 in 7 with multibyte UTF-8) as
fast as it can; ``training.start_training`` launches it and ``training.follow_run`` follows it
(every ``fetch`` is timed and decoded on the side). The followed text is compared with the log file
on the instance's disk (``instances/<iid>/runctl/<project>/runs/<run-id>/log`` under the sandbox
folder): lost / duplicated bytes are counted line by line (every line is unique).

Then the finished run's log is caught up from byte 0 again with the sandbox's SSM latency raised to
1 s per signed call (``control.set_faults(info, latency_ms=1000, services=["ssm"])``: SendCommand and
every GetCommandInvocation poll, as on AWS): through S3 (log_catchup.py: one upload command, one
download) and, for comparison, with SSM reads only (the code before it) over the first
``BEFORE_MB`` MB, scaled to the whole log (the whole log takes several minutes that way). The S3
catch-up is also measured with SSM as slow as on AWS instead (``common.aws_ssm_latency``: AWS's own
~1 s round trip, nothing added to each poll).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from .common import Bench, Metric, aws_ssm_latency

LOG_MB = 20
BEFORE_MB = 2  # SSM-only catch-up under 1 s latency is measured over this much, then scaled
SSM_LATENCY_MS = 1000

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


def catch_up(bench: Bench, launch, on_disk: bytes) -> dict:
    """Catch the finished run's log up from byte 0 under 1 s SSM latency: via S3, then SSM reads only."""
    from runctl_jupyter import training
    from runctl_jupyter.sandbox import control

    def measure(limit: int | None, ssm_only: bool) -> dict:
        ctx = bench.context()
        fetch = training.tail_fetcher(ctx, launch.instance_id, launch.log_path) if ssm_only else None
        pieces: list[str] = []
        shown = [0]

        def on_text(text: str) -> None:
            pieces.append(text)
            shown[0] += len(text.encode("utf-8"))

        t0 = time.perf_counter()
        training.follow_run(ctx, launch, on_text, fetch=fetch,
                            should_stop=(lambda: shown[0] >= limit) if limit else None)
        wall = time.perf_counter() - t0
        got = "".join(pieces).encode("utf-8")
        return {"wall": wall, "bytes": len(got), "exact": on_disk.startswith(got) and (limit or got == on_disk),
                "sends": ctx.calls.get("ssm.SendCommand", 0), "polls": ctx.calls.get("ssm.GetCommandInvocation", 0)}

    with aws_ssm_latency(bench.info):  # SSM's own ~1 s round trip (control.AWS_SSM_LATENCY), no added latency
        aws = measure(None, ssm_only=False)
    control.set_faults(bench.info, throttle=0.0, drop=0.0, latency_ms=SSM_LATENCY_MS, services=["ssm"], reset=True)
    try:
        after = measure(None, ssm_only=False)
        before = measure(BEFORE_MB * 1_000_000, ssm_only=True)
    finally:
        control.set_faults(bench.info, latency_ms=0, throttle=0.0, drop=0.0, services=None, reset=True)
    scale = len(on_disk) / max(before["bytes"], 1)
    return {"after": after, "before": before, "scale": scale, "aws": aws}


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api

    script = make_log_project(bench.scratch / "logs")
    ctx = bench.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="logproj").instance_id
    try:
        m = stream(ctx, iid, script, LOG_MB * 1_000_000, bench.sandbox_dir)
        c = catch_up(bench, m["launch"], m["on_disk"])
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
    ] + catch_up_metrics(c, mb)


def catch_up_metrics(c: dict, mb: float) -> list[Metric]:
    after, before, scale, aws = c["after"], c["before"], c["scale"], c["aws"]
    group = f"catch up a {mb:.0f} MB log: round trips and seconds under {SSM_LATENCY_MS / 1000:g} s SSM latency"
    scaled = f"measured over the first {before['bytes'] / 1e6:.1f} MB ({before['sends']} SendCommands, " \
             f"{before['wall']:.0f} s), × {scale:.1f}"
    return [
        Metric("log shown byte-exact (after)", int(bool(after["exact"])), "", 1, op="==", group=group),
        Metric("SendCommands, after (S3 catch-up)", after["sends"], "", 3, group=group,
               note=f"+ {after['polls']} GetCommandInvocation polls; 1 S3 download"),
        Metric("seconds, after (S3 catch-up)", round(after["wall"], 1), "s", None, group=group),
        Metric("SendCommands, before (SSM reads only)", round(before["sends"] * scale), "", None, group=group,
               note=scaled),
        Metric("seconds, before (SSM reads only)", round(before["wall"] * scale), "s", None, group=group,
               note=scaled),
        Metric("log shown byte-exact, SSM as slow as on AWS (S3 catch-up)", int(bool(aws["exact"])), "", 1, op="==",
               group=group),
        Metric("SendCommands, SSM as slow as on AWS (S3 catch-up)", aws["sends"], "", 3, group=group,
               note=f"+ {aws['polls']} GetCommandInvocation polls; 1 S3 download; control.AWS_SSM_LATENCY "
                    "(invocation_lag 0.3 s, ssm_delivery 0.7 s) instead of the 1 s added to every SSM call"),
        Metric("seconds, SSM as slow as on AWS (S3 catch-up)", round(aws["wall"], 1), "s", None, group=group),
    ]
