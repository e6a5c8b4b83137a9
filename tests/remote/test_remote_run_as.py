"""Who the training runs as, and with what environment.

On AWS, SSM runs commands as root with no HOME and the system PATH. The scripts then find the image's
login user (ec2-user on Amazon Linux, ubuntu on Ubuntu and the Deep Learning AMIs), keep runctl's
folder in that user's home, and run the training as that user (setpriv: the PID runctl records is the
training's) with HOME, USER and a login PATH, handing the folder to it — all but the guardian's secrets.
These tests fake the system around the scripts (``id``, ``getent``, ``chown``, ``setpriv`` on PATH) so
they run the same as root or not.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from remote_helpers import PROJECT, wait_for

from runctl_jupyter.remote import parse_fields, script_path

PROBE = """import json, os, sys
json.dump({k: os.environ.get(k) for k in ("HOME", "USER", "LOGNAME", "PATH")} | {"pid": os.getpid()},
          open(sys.argv[1], "w"))
"""


def _shim(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def _fake_users(bin_dir: Path, users: dict[str, tuple[int, int, Path]]) -> None:
    cases = "".join(f"  {shlex.quote(name)}) echo {shlex.quote(f'{name}:x:{uid}:{gid}::{home}:/bin/bash')} ;;\n"
                    for name, (uid, gid, home) in users.items())
    _shim(bin_dir, "getent", f'[ "$1" = passwd ] || exit 2\ncase "$2" in\n{cases}  *) exit 2 ;;\nesac\n')


def test_with_neither_runctl_root_nor_home_the_login_users_home_is_root(tmp_path, make_inst):
    """An Ubuntu image: no ec2-user, the login user is ubuntu."""
    inst = make_inst("home")
    (inst.checkpoints() / "run-1").mkdir(parents=True)
    (inst.checkpoints() / "run-1" / "epoch_1.pt").write_bytes(b"w")
    bin_dir = tmp_path / "bin"
    _fake_users(bin_dir, {"ubuntu": (1000, 1000, inst.root)})
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "RUNCTL_ROOT")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    r = subprocess.run(["bash", script_path("checkpoints"), PROJECT], env=env, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "checkpoint=run-1%2Fepoch_1.pt " in r.stdout
    # no login user at all: a clear refusal, not a listing of `/runctl`
    _shim(bin_dir, "getent", "exit 2\n")
    r = subprocess.run(["bash", script_path("checkpoints"), PROJECT], env=env, capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "no login user" in r.stderr


def test_as_root_the_training_runs_as_the_login_user_with_a_login_environment(tmp_path, inst):
    home = inst.root  # ROOT is the login user's home, as on AWS
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    calls.mkdir()
    _shim(bin_dir, "id", 'case "$1" in -u) echo 0 ;; -un) echo root ;; *) exec /usr/bin/id "$@" ;; esac\n')
    _fake_users(bin_dir, {"trainer": (4242, 4243, home)})
    _shim(bin_dir, "chown", f'printf "%s\\n" "$@" >> {shlex.quote(str(calls / "chown"))}\n')
    # the login PATH starts with ~/.local/bin: the fake setpriv there records its options and execs the rest
    _shim(home / ".local" / "bin", "setpriv",
          f'printf "%s\\n" "$@" > {shlex.quote(str(calls / "setpriv"))}\n'
          'while [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n')
    (inst.code / "probe.py").write_text(PROBE)
    secrets = inst.project_dir() / "runs" / "old-run" / ".guardian"
    secrets.mkdir(parents=True)
    (secrets / "s3post.curl").write_text("url = secret")
    out = tmp_path / "seen.json"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RUNCTL_RUN_AS": "trainer", "HOME": ""}
    r = inst.run("launch", PROJECT, "r-as", "probe.py", str(out), env=env)
    assert r.returncode == 0, r.stderr
    started = parse_fields(r.stdout)
    wait_for(out.exists, 20, what="the probe's report")
    seen = json.loads(wait_for(lambda: out.read_text() or None, 5, what="the probe's report"))
    assert seen["HOME"] == str(home) and seen["USER"] == seen["LOGNAME"] == "trainer"
    assert seen["PATH"].split(":")[:2] == [str(home / ".local" / "bin"), "/usr/local/bin"]
    assert (calls / "setpriv").read_text().split() == ["--reuid=4242", "--regid=4243", "--init-groups", "--",
                                                      sys.executable, "probe.py", str(out)]
    assert int(started["pid"]) == seen["pid"]  # the PID runctl shows is the training's own
    handed = (calls / "chown").read_text().splitlines()
    assert handed[:2] == ["-h", "--"] and "4242:4243" in handed
    assert str(inst.code / "probe.py") in handed and str(inst.lock) in handed
    assert not any(".guardian" in line for line in handed)  # the guardian's secrets stay root's
    assert inst.wait_done("r-as") == 0


def test_not_root_the_training_runs_as_we_do_with_home_defaulting_to_root(tmp_path, inst):
    """The sandbox, and a user who runs the scripts themselves: no switch, HOME = ROOT when unset."""
    bin_dir = tmp_path / "bin"
    _shim(bin_dir, "id", 'case "$1" in -u) echo 1000 ;; -un) echo me ;; *) exec /usr/bin/id "$@" ;; esac\n')
    (inst.code / "probe.py").write_text(PROBE)
    out = tmp_path / "seen.json"
    env = {k: v for k, v in os.environ.items() if k != "HOME"}
    env.update({"PATH": f"{bin_dir}:/usr/bin:/bin", "RUNCTL_ROOT": str(inst.root), "RUNCTL_PYTHON": sys.executable})
    r = subprocess.run(["bash", script_path("launch"), PROJECT, "r-me", "probe.py", str(out)], env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    seen = json.loads(wait_for(lambda: out.exists() and out.read_text() or None, 20, what="the probe's report"))
    assert seen["HOME"] == str(inst.root) and seen["USER"] == "me"
    assert inst.wait_done("r-me") == 0
