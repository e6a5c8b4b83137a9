"""A stdlib stand-in for a PyTorch training with ``DataLoader(num_workers=N)`` workers.

Like torch: the workers are forked children with the default SIGTERM action; the main process
fails (exit 1, no final checkpoint) when a worker dies by a signal, which torch notices through
SIGCHLD ("DataLoader worker (pid N) is killed by signal: Terminated"). On SIGTERM the main process
saves its final checkpoint, then shuts the workers down cleanly (closing their pipe) and exits 0.
One extra "prefetcher" ignores SIGTERM and never exits by itself: only SIGKILL ends it (as an orphan
that would keep GPU memory).

argv: WORKERS SAVE_SECONDS
"""

import os
import select
import signal
import sys
import time

workers_n, save_seconds = int(sys.argv[1]), float(sys.argv[2])
checkpoint_dir = os.environ["RUNCTL_CHECKPOINT_DIR"]
stop_requested = False


def worker(read_end: int) -> None:
    os.close(write_end)  # only the main process holds it: closing it is the shutdown signal
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:  # serve batches until the main process closes the pipe
        ready, _, _ = select.select([read_end], [], [], 0.05)
        if ready and os.read(read_end, 1) == b"":
            os._exit(0)


def fork(target, *args) -> int:
    pid = os.fork()
    if pid == 0:
        target(*args)
        os._exit(0)
    return pid


read_end, write_end = os.pipe()
workers = [fork(worker, read_end) for _ in range(workers_n)]


def prefetcher() -> None:
    os.close(write_end)
    os.close(read_end)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


fork(prefetcher)
os.close(read_end)


def on_child(_sig, _frame) -> None:
    for pid in workers:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done and os.WIFSIGNALED(status):
            raise RuntimeError(f"DataLoader worker (pid {done}) is killed by signal: "
                               f"{signal.strsignal(os.WTERMSIG(status))}")


def on_term(_sig, _frame) -> None:
    global stop_requested
    stop_requested = True


signal.signal(signal.SIGCHLD, on_child)
signal.signal(signal.SIGTERM, on_term)
print(f"workers ready: {workers}", flush=True)
while not stop_requested:
    time.sleep(0.05)
time.sleep(save_seconds)  # writing the final checkpoint takes a while
tmp = os.path.join(checkpoint_dir, ".final.pt.tmp")
with open(tmp, "w") as fh:
    fh.write("final weights\n")
os.replace(tmp, os.path.join(checkpoint_dir, "final.pt"))
print("received SIGTERM: saved final.pt", flush=True)
signal.signal(signal.SIGCHLD, signal.SIG_DFL)
os.close(write_end)
for pid in workers:
    os.waitpid(pid, 0)
sys.exit(0)
