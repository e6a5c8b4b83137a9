"""2. Code sync of a generated 1,000-file project: cold bytes/time, then an unchanged re-sync.

Bytes sent to S3 are summed from the ``Body`` of every ``s3.PutObject`` the Context's client makes
(botocore ``provide-client-params`` event); SSM round trips of the sync part are the
``SendCommand`` calls whose command is ``sync_manifest`` (the code bundle, when there is one, rides
in the launch command, so it costs no round trip of its own).
"""

from __future__ import annotations

import time
from pathlib import Path

from .common import Bench, Metric, aws_ssm_latency, make_project

ANCHOR = "runctl CLI: no incremental sync (re-sends everything)"


class _Meter:
    def __init__(self, ctx) -> None:
        self.put_bytes = 0
        self.puts = 0
        self.manifest_reads = 0
        self.calls: dict[str, int] = {}
        ctx.client("s3").meta.events.register("provide-client-params.s3.PutObject", self._put)
        ctx.client("ssm").meta.events.register("provide-client-params.ssm.SendCommand", self._send)

    def _put(self, params, **_kw) -> None:
        body = params.get("Body", b"")
        self.puts += 1
        self.put_bytes += len(body) if isinstance(body, bytes | bytearray | str) else 0

    def _send(self, params, **_kw) -> None:
        if "sync_manifest" in params.get("Comment", ""):
            self.manifest_reads += 1


def _train(ctx, iid: str, script: Path):
    from runctl_jupyter import training

    meter = _Meter(ctx)
    t = time.perf_counter()
    launch = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0"])
    wall = time.perf_counter() - t
    meter.calls = dict(ctx.calls)  # those of the train itself (waiting for its end makes more)
    training.wait_for_exit(ctx, launch, timeout_s=120)
    return meter, wall, launch


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api, training

    project = make_project(bench.scratch / "sync", 1000, name="syncproj")
    script = project / "train" / "train.py"
    ctx = bench.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="syncproj").instance_id
    try:
        cold, cold_wall, launch = _train(api.context(), iid, script)
        warm_ctx = api.context()
        warm, warm_wall, _ = _train(warm_ctx, iid, script)
        with aws_ssm_latency(bench.info):  # the same, with SSM as slow as on AWS (about 1 s a round trip)
            aws, aws_wall, _ = _train(api.context(), iid, script)
        # Another machine (no local manifest cache): the instance's manifest is read back in pages.
        training.launch._manifest_cache(ctx).forget(iid)  # noqa: SLF001
        other_ctx = api.context()
        other, _, _ = _train(other_ctx, iid, script)
    finally:
        api.terminate(ctx, iid, force=True)
    group = "sync (1,000-file project)"
    return [
        Metric("cold sync: bytes to S3", cold.put_bytes, "B", None, group=group,
               note=f"{cold.puts} PutObject (one bundle); files={launch.synced.get('uploaded')}"),
        Metric("cold sync + launch: wall time", round(cold_wall * 1000), "ms", None, group=group),
        Metric("unchanged re-sync: bytes to S3", warm.put_bytes, "B", 0, anchor=f"{cold.put_bytes:,} B (re-send all)",
               note=ANCHOR, group=group),
        Metric("unchanged re-sync: PutObject calls", warm_ctx.calls["s3.PutObject"], "", 0, group=group),
        Metric("unchanged re-sync: SSM round trips for sync", warm.manifest_reads, "", 1, group=group),
        Metric("unchanged re-sync + launch: wall time", round(warm_wall * 1000), "ms", None, group=group),
        Metric("unchanged re-sync, SSM as slow as on AWS: SSM round trips for sync", aws.manifest_reads, "", 1,
               group=group, note=f"{aws.calls.get('ssm.SendCommand', 0)} SendCommands in the whole train, "
                                 f"{aws.calls.get('ssm.GetCommandInvocation', 0)} GetCommandInvocation polls; "
                                 f"bytes to S3: {aws.put_bytes}"),
        Metric("unchanged re-sync + launch, SSM as slow as on AWS: wall time", round(aws_wall, 2), "s", None,
               group=group, note="control.AWS_SSM_LATENCY: invocation_lag 0.3 s, ssm_delivery 0.7 s"),
        Metric("re-sync without local cache: SSM round trips for sync", other.manifest_reads, "", None,
               group=group, note=f"bytes to S3: {other.put_bytes} (manifest read back in pages)"),
    ]
