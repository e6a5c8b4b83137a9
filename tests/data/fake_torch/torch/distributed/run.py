"""A stand-in for torchrun (``python -m torch.distributed.run``), standard library only.

Like the real one with ``--standalone --nproc-per-node=N``: it starts N workers (``python SCRIPT
ARGS…``, RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in their environment), and on SIGTERM
passes one SIGTERM to each worker and waits for them (torch.distributed.elastic closes its workers
with the signal it received). It prints its own command line first (``sys.orig_argv``), so a test
sees how it was started.
"""

import json
import os
import signal
import subprocess
import sys

print("torchrun argv: " + json.dumps(sys.orig_argv), flush=True)
args = sys.argv[1:]
nproc = 1
rest = []
for arg in args:
    if arg.startswith("--nproc-per-node="):
        nproc = int(arg.split("=", 1)[1])
    elif arg != "--standalone":
        rest.append(arg)
script, script_args = rest[0], rest[1:]
workers = []
signalled = []


def forward(signum, frame):
    signalled.append(signum)
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signum)


signal.signal(signal.SIGTERM, forward)
for rank in range(nproc):
    env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
               LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    workers.append(subprocess.Popen([sys.executable, script, *script_args], env=env))
codes = [worker.wait() for worker in workers]
print(f"torchrun: workers ended with {codes}" + (" after SIGTERM" if signalled else ""), flush=True)
sys.exit(next((c for c in codes if c), 0))
