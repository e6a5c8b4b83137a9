"""A stdlib stand-in for torch.distributed's rendezvous: run it on every node of a fleet to check that
the nodes reach node 0 (``runctl fleet train NAME training/fleet_rendezvous.py --wait``).

Rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects (retrying until rank 0 is up)
and sends its rank; rank 0 answers everyone with the sorted list of ranks it heard. Every rank
prints ``ranks [0, 1, 2]``. ``--fail-rank R`` makes rank R exit 1 right after the rendezvous (a
training step that fails), while the others go on "training" for ``--timeout`` seconds, waiting
for it as a collective would.
"""

import argparse
import json
import os
import socket
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--fail-rank", type=int, default=-1)
parser.add_argument("--timeout", type=float, default=60)
args = parser.parse_args()


def say(text: str) -> None:
    """One write per line: several processes (torchrun's workers) append to one log."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
say(f"node {os.environ['NODE_RANK']}/{os.environ['NNODES']} rank {rank}/{world} "
    f"local_rank {os.environ['LOCAL_RANK']} master {addr}:{port}")
if rank == 0:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((addr, port))
    server.listen(world)
    server.settimeout(args.timeout)
    peers, ranks = [], [0]
    while len(peers) < world - 1:
        conn, _ = server.accept()
        ranks.append(int(conn.recv(16).decode()))
        peers.append(conn)
    answer = json.dumps(sorted(ranks)).encode()
    for conn in peers:
        conn.sendall(answer)
        conn.close()
    say(f"ranks {sorted(ranks)}")
else:
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            sock = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    sock.sendall(str(rank).encode())
    sock.settimeout(args.timeout)
    say(f"ranks {json.loads(sock.recv(1024).decode())}")

if args.fail_rank >= 0:
    if rank == args.fail_rank:
        say(f"rank {rank}: failing on purpose")
        sys.exit(1)
    time.sleep(args.timeout)  # the next collective waits for the rank that is gone
    say(f"rank {rank}: gave up waiting for rank {args.fail_rank}")
    sys.exit(1)
