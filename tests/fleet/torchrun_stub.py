"""A stand-in for ``python -m torch.distributed.run`` (no torch in the sandbox): configured by torchrun's
own PET_* environment variables for the rendezvous and ``--nproc-per-node=N`` (never --standalone on a
fleet), as runctl's fleet train configures it, it starts N workers of the script with RANK /
WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set as torchrun sets them, and exits with the worst exit code."""

import os
import subprocess
import sys

nnodes, node = (int(os.environ[k]) for k in ("PET_NNODES", "PET_NODE_RANK"))
flags = [a for a in sys.argv[1:] if a.startswith("--")]
assert flags == [a for a in flags if a.startswith("--nproc-per-node=")], f"unexpected torchrun flags {flags}"
nproc = int(flags[0].split("=", 1)[1]) if flags else 1
pet = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("PET_"))
sys.stdout.write(f"torchrun stub: {pet} nproc_per_node={nproc}\n")
sys.stdout.flush()
script, *args = [a for a in sys.argv[1:] if not a.startswith("--")]
workers = []
for local in range(nproc):
    env = dict(os.environ, RANK=str(node * nproc + local), WORLD_SIZE=str(nnodes * nproc), LOCAL_RANK=str(local),
               MASTER_ADDR=os.environ["PET_MASTER_ADDR"], MASTER_PORT=os.environ["PET_MASTER_PORT"])
    workers.append(subprocess.Popen([sys.executable, script, *args], env=env))
sys.exit(max(w.wait() for w in workers))
