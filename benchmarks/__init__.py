"""runctl-jupyter benchmarks: ``python -m benchmarks`` (``make bench``) runs them all; see BENCHMARKS.md."""

MODULES = ("bench_train", "bench_sync", "bench_logs", "bench_sandbox", "bench_table", "bench_import",
           "bench_resources", "bench_stop", "bench_fleet")
