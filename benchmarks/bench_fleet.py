"""9. What starting an N-node fleet run costs, for N = 2, 4, 8: SSM SendCommands and S3 PutObjects
(counted in ``Context.calls``), and the time from ``fleet train`` until every node's training process
runs (``api.fleet_train`` returns once every node's launch.sh has reported ``started=1``, i.e. its
wrapper recorded the training's PID).

Each N: ``api.fleet_create(..., wait=True)`` of N t3.micro, then a cold ``fleet_train`` (new nodes:
runctl's scripts installed, the whole project sent), a warm one (same code: nothing sent), and a warm
one with SSM as slow as on AWS (``common.aws_ssm_latency``). The script is the tests' stdlib TCP
rendezvous (``training/fleet_rendezvous.py``): every run is followed to its end and must succeed.
Then one run in which the last node fails and nobody follows: the time from its end to the end of
the last other node's run (their guardians see it in S3 and stop them), from the run folders' files.
"""

from __future__ import annotations

import shutil
import time

from .common import REPO, Bench, Metric, aws_ssm_latency

RENDEZVOUS = REPO / "training" / "fleet_rendezvous.py"
SIZES = (2, 4, 8)
GROUP = "fleet train (N nodes)"


def _train(bench: Bench, name: str, script) -> tuple[int, int, float]:
    """(SendCommands, PutObjects, seconds until every node runs) of one fleet train, followed to its end."""
    from runctl_jupyter import api

    ctx = bench.context()
    t = time.perf_counter()
    launch = api.fleet_train(ctx, name, script, ["--timeout", "120"], project="fleetbench")
    wall = time.perf_counter() - t
    sends, puts = ctx.calls["ssm.SendCommand"], ctx.calls["s3.PutObject"]
    result = api.fleet_follow(bench.context(), launch, lambda _text: None)
    if result.state != "succeeded":
        raise RuntimeError(f"fleet run {launch.run_id} on {name}: {result.summary()}")
    return sends, puts, wall


def _unattended(bench: Bench, name: str, script, n: int) -> float:
    """Seconds from the failing node's end to the last other node's end, with nobody following."""
    from runctl_jupyter import api

    launch = api.fleet_train(bench.context(), name, script, ["--fail-rank", str(n - 1), "--timeout", "120"],
                             project="fleetbench")
    ends = [bench.sandbox_dir / "instances" / la.instance_id / "runctl" / "fleetbench" / "runs" / launch.run_id /
            "exit_code" for la in launch.launches]
    deadline = time.monotonic() + 120
    while not all(end.exists() for end in ends):
        if time.monotonic() > deadline:
            raise RuntimeError(f"fleet run {launch.run_id} on {name}: the other nodes were not stopped")
        time.sleep(0.1)
    if ends[-1].read_text().strip() != "1":
        raise RuntimeError(f"fleet run {launch.run_id} on {name}: node {n - 1} did not fail as asked")
    return max(end.stat().st_mtime for end in ends[:-1]) - ends[-1].stat().st_mtime


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api

    project = bench.scratch / "fleetbench"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "fleetbench"\nversion = "0.1.0"\n')
    script = project / "rendezvous.py"
    shutil.copy(RENDEZVOUS, script)
    metrics: list[Metric] = []
    for n in SIZES:
        ctx = bench.context()
        name = f"bench{n}"
        t = time.perf_counter()
        api.fleet_create(ctx, name, "t3.micro", nodes=n, wait=True, project="fleetbench")
        created = time.perf_counter() - t
        try:
            cold = _train(bench, name, script)
            warm = _train(bench, name, script)
            with aws_ssm_latency(bench.info):
                slow = _train(bench, name, script)
            unattended = _unattended(bench, name, script, n)
        finally:
            api.fleet_terminate(ctx, name, force=True)
        metrics += [
            Metric(f"N={n}: SendCommands, cold fleet train (new nodes)", cold[0], "", None, group=GROUP,
                   note="1 status + 1 script install + 1 status again + 1 manifest read (each one command for "
                        f"every node) + {n} launches"),
            Metric(f"N={n}: SendCommands per node, warm fleet train", round(warm[0] / n, 2), "", 2, group=GROUP,
                   note=f"{warm[0]} in all: 1 status + 1 manifest read for every node + {n} launches"),
            Metric(f"N={n}: S3 PutObjects, cold fleet train", cold[1], "", 1, group=GROUP,
                   note="one code bundle that every node fetches"),
            Metric(f"N={n}: S3 PutObjects, warm fleet train", warm[1], "", 0, group=GROUP, note="code unchanged"),
            Metric(f"N={n}: fleet train → every node running, cold", round(cold[2], 2), "s", None, group=GROUP),
            Metric(f"N={n}: fleet train → every node running, warm", round(warm[2], 2), "s", None, group=GROUP),
            Metric(f"N={n}: fleet train → every node running, warm, SSM as slow as on AWS", round(slow[2], 2), "s",
                   None, group=GROUP, note=f"{slow[0]} SendCommands; launches sent concurrently"),
            Metric(f"N={n}: fleet create --wait (sandbox delays)", round(created, 2), "s", None, group=GROUP),
            Metric(f"N={n}: unattended, node {n - 1} fails → every other node's run ended", round(unattended, 2), "s",
                   None, group=GROUP, note="their guardians list the run's fleet-ends in S3 every 2 s here (30 s on "
                                           "AWS) and act on the 2nd list that shows it, then SIGTERM and wait"),
        ]
    return metrics
