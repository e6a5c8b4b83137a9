"""A torchrun worker for the tests (standard library only): says who it is, then waits for SIGTERM and
says which process sent it (sigwaitinfo's si_pid) and how many came, saves a checkpoint and exits 0.
With ``--exit`` it exits at once."""

import os
import signal
import sys


def say(text: str) -> None:
    """One write per line: the workers share the log, unbuffered (print writes the newline apart)."""
    os.write(1, (text + "\n").encode())


signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
rank = int(os.environ["RANK"])
say(f"rank {rank} of {os.environ['WORLD_SIZE']} ready: pid {os.getpid()} parent {os.getppid()} "
    f"args {sys.argv[1:]}")
if "--exit" in sys.argv:
    sys.exit(0)
info = signal.sigwaitinfo({signal.SIGTERM})
count = 1
while signal.sigtimedwait({signal.SIGTERM}, 0.5) is not None:  # any more within half a second?
    count += 1
say(f"rank {rank} SIGTERM from {info.si_pid}")
with open(os.path.join(os.environ["RUNCTL_CHECKPOINT_DIR"], f"rank{rank}.pt"), "w") as out:
    out.write("weights")
say(f"rank {rank} saved after {count} SIGTERM(s)")
sys.exit(0)
