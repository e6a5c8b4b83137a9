"""7. Sandbox start time, and the overhead of one sandbox SSM round trip (median of 20 ``echo hi``).

The start time is measured by ``python -m benchmarks`` itself (a cold ``api.sandbox_start`` in a
new temporary folder) and handed in as ``bench.extra["sandbox_start_s"]``; attaching to the running
sandbox is timed here. A round trip is SendCommand + GetCommandInvocation polls (runctl's own
``ssm.wait_result``) until the command has ended.
"""

from __future__ import annotations

import statistics
import time

from .common import Bench, Metric


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api
    from runctl_jupyter.aws import ssm

    ctx = bench.context()
    t = time.perf_counter()
    api.sandbox_start(str(bench.sandbox_dir))
    attach_s = time.perf_counter() - t
    iid = api.create(ctx, "t3.micro", wait=True, project="echo").instance_id
    try:
        client = ctx.client("ssm")
        samples, polls = [], []
        for _ in range(20):
            before = ctx.calls["ssm.GetCommandInvocation"]
            t = time.perf_counter()
            cid = client.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                                      Parameters={"commands": ["echo hi"]})["Command"]["CommandId"]
            result = ssm.wait_result(ctx, iid, cid)
            samples.append(time.perf_counter() - t)
            polls.append(ctx.calls["ssm.GetCommandInvocation"] - before)
            assert result.stdout.strip() == "hi", result
    finally:
        api.terminate(ctx, iid, force=True)
    group = "sandbox"
    start_s = bench.extra.get("sandbox_start_s")
    return [
        Metric("sandbox start (cold, new folder)", round(start_s * 1000) if start_s else None, "ms", None,
               group=group),
        Metric("sandbox attach (already running)", round(attach_s * 1000, 1), "ms", None, group=group),
        Metric("SSM round trip `echo hi` (median of 20)", round(statistics.median(samples) * 1000, 1), "ms", None,
               group=group, note=f"GetCommandInvocation polls per round trip: median {statistics.median(polls):g}"),
    ]
