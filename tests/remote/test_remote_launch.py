"""launch.sh: starting a training detached, byte-exact arguments, errors that give the claim back."""

from __future__ import annotations

import itertools
import json
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runctl_jupyter.remote import command_for, parse_fields

FAST = ["--sleep", "0", "--epochs", "1"]


def test_launch_runs_the_script_to_the_end(inst):
    p = inst.project
    r = inst.run("launch", p, "r1", "train.py", "--sleep", "0", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    f = inst.fields(r.stdout)
    assert f["started"] == "1" and f["run_id"] == "r1" and f["project"] == p
    assert f["log"] == str(inst.run_dir("r1") / "log")
    assert int(f["pid"]) > 0
    assert inst.wait_done("r1") == 0
    log = inst.log("r1")
    assert "epoch 1/3 loss=" in log and "epoch 3/3 loss=" in log
    assert log.rstrip("\n").splitlines()[-1] == "[runctl] exit code 0"
    run = inst.run_dir("r1")
    assert (run / "exit_code").read_text() == "0\n"
    pid, start = (run / "pid").read_text().split()
    assert pid == f["wrapper_pid"] and start.isdigit()
    main_pid, main_start = (run / "main_pid").read_text().split()  # the training's own process
    assert main_pid == f["pid"] != pid and main_start.isdigit()
    assert json.loads((run / "meta.json").read_text()) == {
        "run_id": "r1",
        "project": p,
        "script": "train.py",
        "args": ["--sleep", "0", "--epochs", "3"],
        "python": sys.executable,  # which interpreter ran: RUNCTL_PYTHON, the `python` setting
        "python_source": "setting",
    }
    assert (run / "python").read_text() == f"{sys.executable}\nsetting\n"
    assert f["python"] == sys.executable and f["python_source"] == "setting"
    assert sorted(x.name for x in inst.checkpoints().iterdir()) == [
        f"checkpoint_epoch_{e}.json" for e in (1, 2, 3)
    ]
    assert not inst.lock.exists()
    # the instance is free again
    r2 = inst.run("launch", p, "r2", "train.py", *FAST)
    assert r2.returncode == 0 and "started=1" in r2.stdout
    assert inst.wait_done("r2") == 0


def test_training_environment(inst):
    """cwd = code dir, stdin /dev/null, own session + process group, RUNCTL_* env, unbuffered."""
    (inst.code / "env.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'pid': os.getpid(), 'cwd': os.getcwd(), 'pgid': os.getpgid(0), 'sid': os.getsid(0),\n"
        "  'ppid': os.getppid(), 'stdin': os.path.realpath('/proc/self/fd/0'),\n"
        "  'env': {k: os.environ.get(k) for k in ('RUNCTL_RUN_ID', 'RUNCTL_PROJECT',\n"
        "  'RUNCTL_CHECKPOINT_DIR', 'PYTHONUNBUFFERED', 'RUNCTL_RESUME_FROM', 'RUNCTL_META_JSON')}}))\n"
    )
    r = inst.run("launch", inst.project, "env1", "env.py", env={"RUNCTL_RESUME_FROM": "auto"})
    assert r.returncode == 0, r.stderr
    wrapper = int(inst.fields(r.stdout)["wrapper_pid"])
    pid = int(inst.fields(r.stdout)["pid"])
    assert inst.wait_done("env1") == 0
    got = json.loads(next(x for x in inst.log("env1").splitlines() if x.startswith("{")))
    assert got["cwd"] == str(inst.code)
    # the training is the wrapper's child, in the wrapper's own session and process group
    assert got["pid"] == pid and got["ppid"] == wrapper
    assert got["pgid"] == wrapper and got["sid"] == wrapper
    assert got["stdin"] == "/dev/null"
    assert got["env"] == {
        "RUNCTL_RUN_ID": "env1",
        "RUNCTL_PROJECT": inst.project,
        "RUNCTL_CHECKPOINT_DIR": str(inst.checkpoints()),
        "PYTHONUNBUFFERED": "1",
        "RUNCTL_RESUME_FROM": "auto",
        "RUNCTL_META_JSON": None,
    }
    assert inst.checkpoints().is_dir()


def test_meta_json_from_caller_and_venv_python(inst):
    venv_bin = inst.project_dir() / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (inst.code / "which.py").write_text("import sys\nprint('exe=' + sys.executable)\n")
    meta = '{"script": "which.py", "args": ["x y"], "by": "caller"}'
    r = inst.run(
        "launch",
        inst.project,
        "v1",
        "which.py",
        env={"RUNCTL_META_JSON": meta, "RUNCTL_PYTHON": "/nonexistent/python3"},
    )
    assert r.returncode == 0, r.stderr
    assert inst.wait_done("v1") == 0
    assert f"exe={venv_bin / 'python'}" in inst.log("v1")
    # the caller's object, with the interpreter added (an older runctl's venv: used as it is)
    written = (inst.run_dir("v1") / "meta.json").read_text()
    assert written == meta[:-1] + f', "python": {json.dumps(str(venv_bin / "python"))}, "python_source": "venv"}}\n'
    assert json.loads(written)["by"] == "caller"


def test_missing_script_gives_the_claim_back(inst):
    r = inst.run("launch", inst.project, "m1", "nope.py")
    assert r.returncode == 2
    assert r.stderr.startswith("runctl: script not found: nope.py") and r.stderr.count("\n") == 1
    assert not inst.lock.exists()
    assert not (inst.project_dir() / "runs").exists()


def test_missing_python_is_a_clear_error(inst):
    for py, msg in (
        ("/nonexistent/python3", "python not found: /nonexistent/python3"),
        ("no-such-python3", "no-such-python3 not found on the instance"),
    ):
        r = inst.run("launch", inst.project, "py1", "train.py", env={"RUNCTL_PYTHON": py})
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert not inst.lock.exists()
        assert not (inst.project_dir() / "runs").exists()


def test_bad_arguments(inst):
    cases = [
        (inst.project, "r1"),
        ("../etc", "r1", "train.py"),
        ("a b", "r1", "train.py"),
        (inst.project, "..", "train.py"),
        (inst.project, "x/y", "train.py"),
        (inst.project, "r1", "/etc/passwd"),
        (inst.project, "r1", "../code/train.py"),
        (inst.project, "r1", "-c"),
    ]
    for args in cases:
        r = inst.run("launch", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("runctl: ") and r.stdout == ""
        assert not inst.lock.exists()
    assert not (inst.project_dir() / "runs").exists()


def test_existing_run_id_is_refused(inst):
    r = inst.run("launch", inst.project, "same", "train.py", *FAST)
    assert r.returncode == 0
    inst.wait_done("same")
    r = inst.run("launch", inst.project, "same", "train.py", *FAST)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert not inst.lock.exists()


# --- byte-exact arguments ------------------------------------------------------------------------

HOSTILE = [
    "$(touch {c}/dollar)",
    "`touch {c}/backtick`",
    "; touch {c}/semi",
    "| touch {c}/pipe",
    "\ntouch {c}/newline\n",
    "&& touch {c}/and",
    "' ; touch {c}/sq ; '",
    '" ; touch {c}/dq ; "',
    "$(touch {c}/x)'\"",
    "*",
    "{c}/*",
    "-",
    "--",
    "--epochs",
    "-c",
    "",
    " ",
    "  two  spaces ",
    "\\",
    "\\n",
    "$HOME",
    "${{IFS}}",
    "$0",
    "$@",
    "!!",
    "~",
    ">{c}/redirect",
    "<",
    "%s%n%%",
    "a=b",
    "%41%0A",
    "\t",
    "é→🚀",
    "\u00a0",
    "\r\n",
    "RUNCTL_EOF_",
    "@runctl started=1 pid=1",
    "#",
]

arg = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)
_ids = itertools.count()


def _launch_and_check(inst, canary, args, via_sh):
    run_id = f"h{next(_ids)}"
    argv = [inst.project, run_id, "train.py", *FAST, "--checkpoint-dir", str(canary / "ck"), "--", *args]
    if via_sh:
        r = inst.via_sh(command_for("launch", argv, {"RUNCTL_ROOT": str(inst.root), "RUNCTL_PYTHON": sys.executable}))
    else:
        r = inst.run("launch", *argv)
    assert r.returncode == 0, r.stderr
    assert parse_fields(r.stdout)["started"] == "1"
    assert inst.wait_done(run_id) == 0
    assert inst.args_line(inst.log(run_id)) == argv[3:]
    assert json.loads((inst.run_dir(run_id) / "meta.json").read_text())["args"] == argv[3:]
    assert sorted(os.listdir(canary)) == ["ck"], "an argument was interpreted by a shell"


@settings(
    max_examples=int(os.environ.get("RUNCTL_SOAK_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(args=st.lists(arg, max_size=6), via_sh=st.booleans())
def test_arguments_arrive_byte_exact(inst, tmp_path, args, via_sh):
    canary = tmp_path / "canary"
    canary.mkdir(exist_ok=True)
    args = [a.replace("{c}", str(canary)) if "{c}" in a else a for a in args]
    _launch_and_check(inst, canary, args, via_sh)


def test_every_hostile_argument_at_once_both_ways(inst, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    args = [a.format(c=canary) for a in HOSTILE]
    _launch_and_check(inst, canary, args, via_sh=False)
    _launch_and_check(inst, canary, args, via_sh=True)


def test_non_utf8_argument_bytes(inst, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    raw = os.fsdecode(b"\xff\xfe caf\xc3\xa9 \x80")
    _launch_and_check(inst, canary, [raw, "ok"], via_sh=False)
    _launch_and_check(inst, canary, [raw], via_sh=True)
