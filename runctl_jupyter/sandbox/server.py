"""The sandbox server: ``python -m runctl_jupyter.sandbox.server --dir DIR [--port 0]``.

Serves one threaded WSGI app on 127.0.0.1 and records ``DIR/server.json``
``{"pid", "port", "endpoint", "started", "dir"}`` once it listens. Ends on POST /_runctl/shutdown,
SIGTERM or SIGINT — always killing every instance process first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from . import gpus, moto_seams, processes
from .app import SandboxApp
from .world import World

PRELOAD_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"]


def _scrub_environment() -> None:
    """The server never talks to real AWS, and never hands real credentials to instances."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def _write_bin(world: World) -> None:
    """``python3``/``python`` on an instance's PATH: a plain interpreter, as an image's system Python
    is — the base one under the notebook's virtualenv, without any site-packages (``-S -s``), so a
    training that needs a package must bring it (requirements.txt), as it must on AWS."""
    world.bin_dir.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", "") or sys.executable
    for name in ("python3", "python"):
        wrapper = world.bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(base)} -S -s "$@"\n')
        wrapper.chmod(0o755)


class Server:
    def __init__(self, root: Path, port: int) -> None:
        self.world = World(root)
        self.app = SandboxApp(self.world, self.shutdown)
        self.httpd = make_server("127.0.0.1", port, self.app, threaded=True,
                                 request_handler=moto_seams.request_handler())
        self.world.port = self.httpd.socket.getsockname()[1]
        self._stopping = threading.Lock()
        self.state_file = self.world.root / "server.json"

    def run(self) -> None:
        world = self.world
        world.instances_dir.mkdir(parents=True, exist_ok=True)
        # Processes left by an earlier server of this folder (killed -9) belong to no instance now.
        processes.kill_all(world.root, None, 0.5)
        _write_bin(world)
        gpus.write_nvidia_smi(world)
        self.app.preload(PRELOAD_REGIONS)
        _write_json(self.state_file, {"pid": os.getpid(), "port": world.port, "endpoint": world.endpoint,
                                      "started": datetime.now(UTC).isoformat(timespec="seconds"),
                                      "dir": str(world.root)})
        print(f"runctl sandbox listening on {world.endpoint} (dir {world.root}, pid {os.getpid()})",
              file=sys.stderr, flush=True)
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._cleanup()

    def shutdown(self) -> None:
        """Kill every instance process, then stop serving (call from any thread but the server's)."""
        if not self._stopping.acquire(blocking=False):
            return
        processes.kill_all(self.world.root, None, self.world.delays.kill_grace)
        self.httpd.shutdown()

    def _cleanup(self) -> None:
        processes.kill_all(self.world.root, None, 0.2)
        try:
            if json.loads(self.state_file.read_text()).get("pid") == os.getpid():
                self.state_file.unlink()
        except (OSError, ValueError):
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runctl_jupyter.sandbox.server")
    parser.add_argument("--dir", required=True, help="sandbox folder (instance disks, server.json, logs)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    _scrub_environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    root = Path(args.dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    server = Server(root, args.port)

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
