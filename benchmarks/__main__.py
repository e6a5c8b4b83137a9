"""``python -m benchmarks [NAME …]``: start a sandbox in a temporary folder, run every benchmark
(or the named ones, e.g. ``bench_logs``), print one table and write ``build/bench.json``.

Nothing here contacts AWS: RUNCTL_SANDBOX_DIR and RUNCTL_CONFIG_FILE point at temporary paths and
every boto3 call goes to the embedded sandbox on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime

from . import MODULES
from .common import REPO, Bench, Metric, isolate_environment, temp_dir


def table(metrics: list[Metric]) -> str:
    head = ("metric", "value", "goal", "met", "anchor")
    rows = [(m.name, m.value_text(), m.goal_text(), {True: "yes", False: "NO", None: ""}[m.met], m.anchor)
            for m in metrics]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    group = None
    for m, r in zip(metrics, rows, strict=True):
        if m.group != group:
            group = m.group
            lines.append("| " + " | ".join(([f"**{group}**"] + [""] * 4)[i].ljust(w) for i, w in enumerate(widths))
                         + " |")
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(MODULES)})")
    parser.add_argument("--json", default=str(REPO / "build" / "bench.json"), help="where to write the results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary sandbox folder")
    args = parser.parse_args(argv)
    names = args.names or list(MODULES)

    from runctl_jupyter import api
    from runctl_jupyter.sandbox import control

    scratch = temp_dir("runctl-bench-")
    sandbox_dir = scratch / "sandbox"
    isolate_environment(sandbox_dir)
    metrics: list[Metric] = []
    failures: list[str] = []
    t = time.perf_counter()
    api.sandbox_start(str(sandbox_dir))
    start_s = time.perf_counter() - t
    try:
        info = control.status(sandbox_dir)
        control.set_delays(info, pending=0.1, stopping=0.1, ssm_online=0.15, kill_grace=0.3)
        bench = Bench(sandbox_dir=sandbox_dir, scratch=scratch, info=info, extra={"sandbox_start_s": start_s})
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            print(f"… {name}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            try:
                metrics.extend(module.run(bench))
            except Exception:  # report and go on with the other benchmarks
                failures.append(name)
                traceback.print_exc()
            print(f"  {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        api.sandbox_stop(str(sandbox_dir))
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(table(metrics))
    missed = [m.name for m in metrics if m.met is False]
    if missed:
        print(f"\nGoals missed: {', '.join(missed)}")
    if failures:
        print(f"\nBenchmarks that failed to run: {', '.join(failures)}")
    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
           "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU",
           "metrics": [m.as_json() for m in metrics], "failed": failures}
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2, ensure_ascii=False)
    print(f"\nWritten to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
