"""1. SSM round trips per ``train`` on a warm instance (the instance already holds the code).

``training.start_training`` is called with a fresh Context on an instance the project was synced to
before; ``ssm.SendCommand`` and ``ssm.GetCommandInvocation`` are counted in ``Context.calls``.
"""

from __future__ import annotations

import time

from .common import Bench, Metric, aws_ssm_latency, make_project

ANCHOR = "runctl CLI: 3+ SSM round trips per train (check, sync, start)"


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api, training

    project = make_project(bench.scratch / "train", 20, name="warmproj")
    script = project / "train" / "train.py"
    ctx = bench.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="warmproj").instance_id
    try:
        first = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0"])
        training.wait_for_exit(ctx, first, timeout_s=120)
        sends, polls, walls = [], [], []
        for _ in range(3):
            warm = api.context()
            t = time.perf_counter()
            launch = training.start_training(warm, iid, script, ["--epochs", "1", "--sleep", "0"])
            walls.append(time.perf_counter() - t)
            sends.append(warm.calls["ssm.SendCommand"])
            polls.append(warm.calls["ssm.GetCommandInvocation"])
            training.wait_for_exit(ctx, launch, timeout_s=120)
        # the same warm train with SSM answering as slowly as on AWS (about 1 s a round trip)
        with aws_ssm_latency(bench.info):
            warm = api.context()
            t = time.perf_counter()
            launch = training.start_training(warm, iid, script, ["--epochs", "1", "--sleep", "0"])
            aws_wall, aws_sends = time.perf_counter() - t, warm.calls["ssm.SendCommand"]
            aws_polls = warm.calls["ssm.GetCommandInvocation"]
        training.wait_for_exit(ctx, launch, timeout_s=120)
    finally:
        api.terminate(ctx, iid, force=True)
    group = "train (warm instance)"
    return [
        Metric("SSM round trips per train (SendCommand)", max(sends), "", 2, anchor="3+ (runctl CLI)",
               note=ANCHOR, group=group),
        Metric("GetCommandInvocation polls per train", max(polls), "", None, group=group,
               note="polls of the round trips above (sandbox: first poll after 50 ms, then x1.6)"),
        Metric("train wall time, warm (median of 3)", round(sorted(walls)[1] * 1000), "ms", None, group=group),
        Metric("SSM round trips per warm train, SSM as slow as on AWS", aws_sends, "", 2, group=group,
               note=f"+ {aws_polls} GetCommandInvocation polls"),
        Metric("train wall time, warm, SSM as slow as on AWS (~1 s a round trip)", round(aws_wall, 1), "s", None,
               group=group, note="control.AWS_SSM_LATENCY: invocation_lag 0.3 s, ssm_delivery 0.7 s"),
    ]
