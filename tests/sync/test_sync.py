"""Code sync: gitignore matching, collecting, planning, bundles, and the remote scripts run with bash."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_jupyter import sync
from runctl_jupyter.remote import parse_fields, script_path
from runctl_jupyter.sync import (
    ALWAYS_EXCLUDED_DIRS,
    FileEntry,
    GitIgnore,
    ManifestCache,
    SyncError,
    collect_files,
    make_bundle,
    manifest_json,
    manifest_sha256,
    parse_manifest,
    plan,
    project_root,
    read_remote_manifest,
)

APPLY = script_path("sync_apply")
MANIFEST = script_path("sync_manifest")


# ---------------------------------------------------------------- gitignore matcher

@pytest.mark.parametrize("patterns, path, is_dir, ignored", [
    (["*.log"], "a.log", False, True),
    (["*.log"], "deep/er/a.log", False, True),
    (["*.log"], "a.logx", False, False),
    (["*.log", "!keep.log"], "x/keep.log", False, False),
    (["*.log", "!keep.log", "*.log"], "keep.log", False, True),          # last match wins
    (["/build"], "build", True, True),
    (["/build"], "src/build", True, False),                               # leading / anchors
    (["build/"], "src/build", True, True),                                # trailing / : dirs only
    (["build/"], "build", False, False),
    (["doc/frotz"], "doc/frotz", False, True),
    (["doc/frotz"], "a/doc/frotz", False, False),                         # middle / anchors too
    (["**/foo"], "foo", False, True),
    (["**/foo"], "a/b/foo", False, True),
    (["**/foo/bar"], "x/foo/bar", False, True),
    (["abc/**"], "abc/x/y", False, True),
    (["abc/**"], "abc", True, False),
    (["a/**/b"], "a/b", False, True),
    (["a/**/b"], "a/x/y/b", False, True),
    (["a/**/b"], "xa/b", False, False),
    (["a*b"], "a/b", False, False),                                       # * does not cross /
    (["a?c"], "abc", False, True),
    (["a?c"], "a/c", False, False),
    (["[ab]x"], "bx", False, True),
    (["[!ab]x"], "cx", False, True),
    (["[!ab]x"], "ax", False, False),
    (["[a-c]*.py"], "b_test.py", False, True),
    (["#comment", "", "   "], "#comment", False, False),
    (["\\#hash"], "#hash", False, True),
    (["\\!bang"], "!bang", False, True),
    (["trail   "], "trail", False, True),                                 # trailing spaces dropped
    (["sp\\ "], "sp ", False, True),
    (["*"], "anything/at/all", False, True),
    (["*", "!*.py"], "x.py", False, False),
    (["data"], "data", True, True),
    (["data"], "data", False, True),
    (["unclosed["], "unclosed[", False, True),
])
def test_gitignore_cases(patterns: list[str], path: str, is_dir: bool, ignored: bool) -> None:
    assert GitIgnore.from_lines(patterns).ignored(path, is_dir) is ignored


def test_gitignore_nested_base() -> None:
    rules = GitIgnore.from_lines(["*.tmp"]).extended(GitIgnore.from_lines(["!keep.tmp", "/local"], "sub"))
    assert rules.ignored("x.tmp", False)
    assert not rules.ignored("sub/keep.tmp", False)
    assert rules.ignored("keep.tmp", False)              # the negation applies only under sub/
    assert rules.ignored("sub/local", False)
    assert not rules.ignored("local", False)
    assert not rules.ignored("sub/x/local", False)


# ---------------------------------------------------------------- project tree fixture

def write(root: Path, rel: str, text: str | bytes = "x") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root, "pyproject.toml", "[project]\nname='p'\n")
    write(root, ".gitignore", "*.log\n/data/\nbuild/\n!important.log\noutputs/*\n!outputs/keep.txt\n")
    write(root, "train.py", "print('hi')\n")
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/model.py", "class M: ...\n")
    write(root, "pkg/.gitignore", "*.bin\n!weights.bin\n")
    write(root, "pkg/blob.bin", b"\0\1")
    write(root, "pkg/weights.bin", b"\2\3")
    write(root, "pkg/__pycache__/model.cpython-311.pyc", b"pyc")
    write(root, "pkg/stale.pyc", b"pyc")
    write(root, "run.log", "log")
    write(root, "important.log", "keep me")
    write(root, "data/big.csv", "1,2")
    write(root, "src/data/ok.csv", "anchored /data/ does not match here")
    write(root, "src/build/out.o", "o")
    write(root, "outputs/a.txt", "no")
    write(root, "outputs/keep.txt", "yes")
    write(root, ".git/HEAD", "ref")
    write(root, ".venv/bin/python", "")
    write(root, "venv/lib/x.py", "")
    write(root, ".ipynb_checkpoints/nb-checkpoint.ipynb", "{}")
    write(root, "checkpoints/epoch1.pt", b"ckpt")      # checkpoints stay on the instance and in S3
    write(root, "scripts/run.sh", "#!/bin/sh\n").chmod(0o775)
    return root


def test_collect_files(project: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.txt", "secret")
    (project / "link_out").symlink_to(outside)
    (project / "link_in").symlink_to(project / "train.py")
    (project / "loop").symlink_to(project)
    (project / "dangling").symlink_to(project / "nope")
    excluded: dict[str, str] = {}
    files = collect_files(project, excluded)
    assert excluded == {".venv/": "a virtualenv", "venv/": "a virtualenv",  # (.git and caches: no word)
                        "checkpoints/": ALWAYS_EXCLUDED_DIRS["checkpoints"]}
    assert sorted(files) == [
        ".gitignore", "important.log", "link_in", "outputs/keep.txt",
        "pkg/.gitignore", "pkg/__init__.py", "pkg/model.py", "pkg/weights.bin", "pyproject.toml",
        "scripts/run.sh", "src/data/ok.csv", "train.py",
    ]
    assert files["train.py"] == FileEntry(12, hashlib.sha256(b"print('hi')\n").hexdigest(), 0o644)
    assert files["link_in"].sha256 == files["train.py"].sha256
    assert files["scripts/run.sh"].mode == 0o755


def test_collect_skips_unsyncable_names(tmp_path: Path) -> None:
    write(tmp_path, "ok.py", "")
    write(tmp_path, "bad\nname.py", "")
    write(tmp_path, ".runctl-manifest.json", "{}")           # reserved on the instance
    with pytest.warns(UserWarning, match="control characters"):
        files = collect_files(tmp_path)
    assert list(files) == ["ok.py"]


def test_git_info_exclude(tmp_path: Path) -> None:
    write(tmp_path, ".git/info/exclude", "secret.txt\n")
    write(tmp_path, "secret.txt")
    write(tmp_path, "a.txt")
    assert list(collect_files(tmp_path)) == ["a.txt"]


def test_project_root(tmp_path: Path) -> None:
    write(tmp_path, "repo/.git/HEAD", "")
    script = write(tmp_path, "repo/src/deep/train.py")
    assert project_root(script) == tmp_path / "repo"
    write(tmp_path, "repo/src/pyproject.toml", "")
    assert project_root(script) == tmp_path / "repo" / "src"
    lone = write(tmp_path, "lone/dir/t.py")
    assert project_root(lone) == tmp_path / "lone" / "dir"


# ---------------------------------------------------------------- plan + manifest

def entry(text: str) -> FileEntry:
    return FileEntry(len(text), hashlib.sha256(text.encode()).hexdigest(), 0o644)


def test_plan_add_change_delete() -> None:
    local = {"a.py": entry("a"), "b.py": entry("b2"), "new.py": entry("n")}
    remote = {"a.py": entry("a").sha256, "b.py": entry("b").sha256, "gone.py": entry("g").sha256}
    p = plan(local, remote)
    assert (p.upload, p.delete, p.unchanged) == (["b.py", "new.py"], ["gone.py"], 1)
    assert p.manifest == {k: v.sha256 for k, v in local.items()}
    assert plan(local, p.manifest).empty
    # only what the remote manifest lists can ever be deleted
    assert plan({}, {}).delete == []


@settings(max_examples=200, deadline=None)
@given(local=st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from("xyz"), max_size=8),
       remote=st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from("xyz"), max_size=8))
def test_plan_properties(local: dict[str, str], remote: dict[str, str]) -> None:
    lf = {k: entry(v) for k, v in local.items()}
    rm = {k: entry(v).sha256 for k, v in remote.items()}
    p = plan(lf, rm)
    after = {k: v for k, v in rm.items() if k not in p.delete}
    after.update({k: lf[k].sha256 for k in p.upload})
    assert after == p.manifest                            # applying the plan gives the local state
    assert set(p.delete) <= set(rm)
    assert p.unchanged + len(p.upload) == len(lf)


def test_manifest_json_roundtrip_and_validation() -> None:
    m = {'we"ird\\ päth/x y.py': "0" * 64, "a": "f" * 64}
    text = manifest_json(m)
    assert text.splitlines()[1] == f'"a": "{"f" * 64}",'
    assert parse_manifest(text) == m
    assert manifest_sha256(m) == hashlib.sha256(text.encode()).hexdigest()
    for bad in ({"../x": "0" * 64}, {"/abs": "0" * 64}, {"a": "nothex"}, {"a\nb": "0" * 64}):
        with pytest.raises(SyncError):
            manifest_json(bad)
    for bad_text in ("[]", "{", '{"a": 1}'):
        with pytest.raises(SyncError):
            parse_manifest(bad_text)


def test_bundle_is_deterministic_and_complete(project: Path) -> None:
    files = collect_files(project)
    p = plan(files, {"gone.py": "0" * 64})
    b1 = make_bundle(project, p)
    os.utime(project / "train.py", (1, 1))
    b2 = make_bundle(project, plan(collect_files(project), {"gone.py": "0" * 64}), files)
    assert b1 == b2
    with tarfile.open(fileobj=io.BytesIO(b1)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[:2] == [".runctl-manifest.json", ".runctl-delete"]
        assert names[2:] == [f"files/{r}" for r in sorted(files)]
        assert all(m.mtime == 0 and m.isfile() for m in members)
        assert tar.extractfile(".runctl-delete").read() == b"gone.py\0"
        assert json.loads(tar.extractfile(".runctl-manifest.json").read()) == p.manifest
        assert tar.getmember("files/scripts/run.sh").mode == 0o755
    (project / "train.py").write_text("changed after collecting")
    with pytest.raises(SyncError, match="changed while"):
        make_bundle(project, p)


# ---------------------------------------------------------------- remote scripts (bash)

def run_script(script: str, args: list[str], root: Path, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "HOME": str(root), "RUNCTL_ROOT": str(root), **(env or {})}
    return subprocess.run(["bash", script, *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


class Instance:
    """A fake instance disk + the caller side of a sync (cache, manifest read, bundle, apply)."""

    def __init__(self, tmp: Path, project: str = "proj", env: dict[str, str] | None = None) -> None:
        self.root = tmp / "instance"
        self.root.mkdir(exist_ok=True)
        self.project = project
        self.code = self.root / "runctl" / project / "code"
        self.bundles = tmp / "bucket"
        self.bundles.mkdir(exist_ok=True)
        self.cache = ManifestCache(tmp / "cache" / "manifests.json")
        self.env = env or {}
        self.manifest_calls = 0
        self.bytes_uploaded = 0

    def fetch_manifest(self, known: str, offset: int, max_bytes: int = 17700) -> str:
        self.manifest_calls += 1
        proc = run_script(MANIFEST, [self.project, known, str(offset), str(max_bytes)], self.root)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def apply(self, bundle: bytes, expected: str | None = "auto") -> subprocess.CompletedProcess[str]:
        digest = hashlib.sha256(bundle).hexdigest()
        path = self.bundles / f"bundle-{digest[:16]}.tar.gz"
        path.write_bytes(bundle)
        self.bytes_uploaded += len(bundle)
        args = [self.project, path.as_uri()] + ([digest if expected == "auto" else expected] if expected else [])
        return run_script(APPLY, args, self.root, self.env)

    def sync(self, local_root: Path) -> tuple[sync.SyncPlan, dict[str, str]]:
        cached = self.cache.get("i-0123456789abcdef0", self.project)
        remote = read_remote_manifest(self.fetch_manifest, cached)
        p = plan(collect_files(local_root), remote)
        if p.empty:
            return p, {}
        proc = self.apply(make_bundle(local_root, p))
        assert proc.returncode == 0, proc.stderr
        self.cache.put("i-0123456789abcdef0", self.project, p.manifest)
        return p, parse_fields(proc.stdout)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip(project: Path, tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    # things on the instance runctl did not put in code/: must survive every sync
    write(inst.code, "outputs/result.txt", "made by the training")
    write(inst.root, "runctl/proj/checkpoints/epoch_001.pt", b"ckpt")

    p, fields = inst.sync(project)
    assert fields["synced"] == "1" and fields["uploaded"] == str(len(p.upload)) and fields["deleted"] == "0"
    assert fields["requirements"] == "none"
    synced = {k: v for k, v in tree(inst.code).items() if k not in (".runctl-manifest.json", "outputs/result.txt")}
    assert synced == {rel: (project / rel).read_bytes() for rel in collect_files(project)}
    assert os.stat(inst.code / "scripts/run.sh").st_mode & 0o111
    assert (inst.code / ".runctl-manifest.json").read_text() == manifest_json(p.manifest)

    # unchanged project: one manifest read, nothing uploaded
    before_calls, before_bytes = inst.manifest_calls, inst.bytes_uploaded
    p, fields = inst.sync(project)
    assert p.empty and inst.manifest_calls == before_calls + 1 and inst.bytes_uploaded == before_bytes

    # change one file: only it moves
    stat_before = {rel: os.stat(inst.code / rel).st_ino for rel in ("pkg/model.py", "train.py")}
    (project / "train.py").write_text("print('v2')\n")
    p, fields = inst.sync(project)
    assert p.upload == ["train.py"] and fields["uploaded"] == "1" and fields["deleted"] == "0"
    assert (inst.code / "train.py").read_text() == "print('v2')\n"
    assert os.stat(inst.code / "pkg/model.py").st_ino == stat_before["pkg/model.py"]

    # delete files locally (one whose folder becomes empty): deleted remotely, outputs untouched
    (project / "pkg" / "model.py").unlink()
    (project / "scripts" / "run.sh").unlink()
    p, fields = inst.sync(project)
    assert p.delete == ["pkg/model.py", "scripts/run.sh"] and fields["deleted"] == "2"
    assert not (inst.code / "pkg/model.py").exists() and not (inst.code / "scripts").exists()
    assert (inst.code / "outputs/result.txt").read_text() == "made by the training"
    assert (inst.root / "runctl/proj/checkpoints/epoch_001.pt").read_bytes() == b"ckpt"
    assert parse_manifest((inst.code / ".runctl-manifest.json").read_text()) == p.manifest

    # the cache went stale (e.g. another machine synced): the full manifest is read back
    inst.cache.forget("i-0123456789abcdef0")
    calls = inst.manifest_calls
    p, _ = inst.sync(project)
    assert p.empty and inst.manifest_calls == calls + 1


def test_weird_names_round_trip(tmp_path: Path) -> None:
    local = tmp_path / "weird"
    names = ['quo"te.py', "back\\slash.py", "sp ace/ä ö.py", "*", "@", "[x]", "-rf", "a=b%c.txt", "日本/語.py"]
    for n in names:
        write(local, n, n)
    inst = Instance(tmp_path)
    inst.sync(local)
    assert {k for k in tree(inst.code) if k != ".runctl-manifest.json"} == set(names)
    for n in names:
        (local / n).unlink()
    p, fields = inst.sync(local)
    assert fields["deleted"] == str(len(names)) and fields["refused_deletes"] == "0"
    assert set(tree(inst.code)) == {".runctl-manifest.json"}


def raw_bundle(members: list[tuple[str, bytes | None, str]], manifest: dict[str, str] | None = None,
               delete: list[str] = ()) -> bytes:
    """Hand-made bundles (possibly hostile): (name, data, kind) with kind file|symlink|hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(".runctl-manifest.json", manifest_json(manifest or {}).encode())
        add(".runctl-delete", b"".join(d.encode() + b"\0" for d in delete))
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc"
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                add(name, data or b"")
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("files/../../../escape.txt", b"evil", "file")],
    [("../escape.txt", b"evil", "file")],
    [("/tmp/abs-escape.txt", b"evil", "file")],
    [("files/ok/../../x", b"evil", "file")],
    [("files/link", None, "symlink"), ("files/link/passwd", b"evil", "file")],
    [("files/hard", None, "hardlink")],
])
def test_tar_slip_refused(tmp_path: Path, members: list[tuple[str, bytes | None, str]]) -> None:
    inst = Instance(tmp_path)
    write(inst.code, "existing.py", "keep")
    before = tree(inst.root)
    proc = inst.apply(raw_bundle(members))
    assert proc.returncode == 3, proc.stderr
    assert "refusing code bundle" in proc.stderr
    assert {k: v for k, v in tree(inst.root).items() if not k.endswith("/.sync.lock")} == before
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/abs-escape.txt").exists()
    assert not any(p.name.startswith(".sync-stage") for p in (inst.root / "runctl/proj").iterdir())


def test_delete_only_what_the_old_manifest_lists(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    write(inst.code, "outputs/model.pt", "trained")                # not runctl's
    write(inst.root, "runctl/proj/checkpoints/c.pt", "ckpt")
    write(inst.root, "runctl/other/code/x.py", "other project")
    first = raw_bundle([("files/a.py", b"a", "file")], manifest={"a.py": hashlib.sha256(b"a").hexdigest()})
    assert inst.apply(first).returncode == 0
    hostile = ["outputs/model.pt", "../checkpoints/c.pt", "../../other/code/x.py", "a.py", "/etc/passwd", ""]
    proc = inst.apply(raw_bundle([], manifest={}, delete=hostile))
    assert proc.returncode == 0, proc.stderr
    fields = parse_fields(proc.stdout)
    assert (fields["deleted"], fields["refused_deletes"]) == ("1", "5")
    assert not (inst.code / "a.py").exists()
    assert (inst.code / "outputs/model.pt").read_text() == "trained"
    assert (inst.root / "runctl/proj/checkpoints/c.pt").read_text() == "ckpt"
    assert (inst.root / "runctl/other/code/x.py").read_text() == "other project"


def test_symlinked_dir_inside_code_is_not_followed_out(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    outside = tmp_path / "outside"
    write(outside, "victim.py", "victim")
    digest = hashlib.sha256(b"v").hexdigest()
    assert inst.apply(raw_bundle([("files/lib/victim.py", b"v", "file")],
                                 manifest={"lib/victim.py": digest})).returncode == 0
    # the training replaced code/lib with a symlink to somewhere else
    (inst.code / "lib" / "victim.py").unlink()
    (inst.code / "lib").rmdir()
    (inst.code / "lib").symlink_to(outside)
    proc = inst.apply(raw_bundle([], manifest={}, delete=["lib/victim.py"]))
    assert proc.returncode == 0 and parse_fields(proc.stdout)["refused_deletes"] == "1"
    assert (outside / "victim.py").read_text() == "victim"
    proc = inst.apply(raw_bundle([("files/lib/new.py", b"n", "file")], manifest={}))
    assert proc.returncode == 3 and not (outside / "new.py").exists()


def test_checksum_mismatch_and_bad_args(tmp_path: Path, project: Path) -> None:
    inst = Instance(tmp_path)
    bundle = make_bundle(project, plan(collect_files(project), {}))
    proc = inst.apply(bundle, expected="0" * 64)
    assert proc.returncode == 3 and "checksum mismatch" in proc.stderr
    assert not inst.code.joinpath("train.py").exists()
    assert run_script(APPLY, ["../x", "file:///nope"], inst.root).returncode == 2
    assert run_script(APPLY, ["proj"], inst.root).returncode == 2
    assert run_script(APPLY, ["proj", "u", "NOTHEX"], inst.root).returncode == 2
    proc = inst.apply(b"this is not a tarball", expected=None)
    assert proc.returncode == 3


def test_url_is_never_printed(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    secret = "X-Amz-Signature=SECRETSIG123"
    for url in (f"file://{tmp_path}/missing.tar.gz?{secret}", f"http://127.0.0.1:9/b.tgz?{secret}"):
        proc = run_script(APPLY, ["proj", url], inst.root)
        assert proc.returncode == 1
        assert "SECRETSIG123" not in proc.stdout + proc.stderr
        assert "could not download the code bundle" in proc.stderr


def test_url_from_environment(tmp_path: Path, project: Path) -> None:
    inst = Instance(tmp_path)
    bundle = make_bundle(project, plan(collect_files(project), {}))
    path = tmp_path / "b.tar.gz"
    path.write_bytes(bundle)
    proc = run_script(APPLY, ["proj", "-"], inst.root, {"RUNCTL_SYNC_URL": path.as_uri()})
    assert proc.returncode == 0 and parse_fields(proc.stdout)["synced"] == "1"


# ---------------------------------------------------------------- requirements

FAKE_PYTHON3 = r"""#!/usr/bin/env bash
# fake python3: only `python3 -m venv [--system-site-packages] DIR`; the pip it installs logs its calls
set -u
[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 1
dir="${!#}"
mkdir -p "$dir/bin"
cat > "$dir/bin/pip" <<'EOF'
#!/usr/bin/env bash
printf '%s\n' "$*" >> "$PIP_CALLS"
echo "Successfully installed nothing"
[ -z "${PIP_FAIL:-}" ]
EOF
chmod +x "$dir/bin/pip"
printf '#!/bin/sh\nexit 1\n' > "$dir/bin/python" && chmod +x "$dir/bin/python"
"""


def test_requirements_installed_only_when_changed(tmp_path: Path, project: Path) -> None:
    bin_dir = tmp_path / "fakebin"
    write(bin_dir, "python3", FAKE_PYTHON3).chmod(0o755)
    calls = tmp_path / "pip-calls"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PIP_CALLS": str(calls)}
    inst = Instance(tmp_path, env=env)
    write(project, "requirements.txt", "numpy==1.26.4\n")
    _, fields = inst.sync(project)
    assert fields["requirements"] == "installed"
    assert len(calls.read_text().splitlines()) == 1
    venv = inst.root / "runctl/proj/venv"
    sha = hashlib.sha256(b"numpy==1.26.4\n").hexdigest()
    assert (venv / ".requirements.sha256").read_text().strip() == sha

    (project / "train.py").write_text("v3")                       # code changes, requirements do not
    _, fields = inst.sync(project)
    assert fields["requirements"] == "unchanged" and len(calls.read_text().splitlines()) == 1

    (project / "requirements.txt").write_text("numpy==2.0.0\n")
    proc_fields = inst.sync(project)[1]
    assert proc_fields["requirements"] == "installed" and len(calls.read_text().splitlines()) == 2

    (project / "requirements.txt").write_text("broken\n")
    inst.env["PIP_FAIL"] = "1"
    p = plan(collect_files(project), read_remote_manifest(inst.fetch_manifest, None))
    proc = inst.apply(make_bundle(project, p))
    assert proc.returncode == 1 and "pip install" in proc.stderr
    assert parse_fields(proc.stdout)["requirements"] == "failed"
    assert "Successfully installed nothing" in proc.stdout           # pip's output is in stdout
    assert not (venv / ".requirements.sha256").exists()             # retried next time


def test_requirements_real_venv_with_empty_file(tmp_path: Path, project: Path) -> None:
    # (make venv made the project's own virtualenv with python3: venv and ensurepip are there)
    inst = Instance(tmp_path)
    write(project, "requirements.txt", "# nothing to install\n")
    _, fields = inst.sync(project)
    assert fields["requirements"] == "installed"
    assert (inst.root / "runctl/proj/venv/bin/python").exists()
    (project / "train.py").write_text("v4")
    _, fields = inst.sync(project)
    assert fields["requirements"] == "unchanged"


# ---------------------------------------------------------------- manifest reading

def test_sync_manifest_script_answers(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    out = inst.fetch_manifest("", 0)
    assert parse_fields(out) == {"manifest": "0", "match": "0"}
    assert read_remote_manifest(inst.fetch_manifest, None) == {}
    assert run_script(MANIFEST, ["bad/name"], inst.root).returncode == 2


def test_large_manifest_is_paged_and_verified(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    big = {f"pkg/module_{i:05d}/file_with_a_longish_name_{i}.py": hashlib.sha256(str(i).encode()).hexdigest()
           for i in range(3000)}
    for i, rel in enumerate(big):
        write(inst.code, rel, str(i))  # what the manifest says is there (else it is drift)
    write(inst.code, ".runctl-manifest.json", manifest_json(big))
    outputs: list[str] = []

    def fetch(known: str, offset: int) -> str:
        out = inst.fetch_manifest(known, offset)
        outputs.append(out)
        return out

    assert read_remote_manifest(fetch, None) == big
    assert len(outputs) > 3 and all(len(o) <= 24_000 for o in outputs)
    assert parse_fields(outputs[0])["files"] == "3000"
    # smaller pages: still exact
    got = read_remote_manifest(lambda k, o: inst.fetch_manifest(k, o, 4000), None)
    assert got == big
    # with the right cache: one call, no data
    n = inst.manifest_calls
    assert read_remote_manifest(inst.fetch_manifest, big) == big and inst.manifest_calls == n + 1
    # a wrong cache is not trusted
    assert read_remote_manifest(inst.fetch_manifest, {"x": "0" * 64}) == big


def test_manifest_changing_between_pages_restarts(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    m1 = {f"f{i}.py": hashlib.sha256(b"1").hexdigest() for i in range(2000)}
    m2 = {f"g{i}.py": hashlib.sha256(b"2").hexdigest() for i in range(2000)}
    for rel in m1:
        write(inst.code, rel, "1")
    for rel in m2:
        write(inst.code, rel, "2")
    write(inst.code, ".runctl-manifest.json", manifest_json(m1))
    calls = {"n": 0}

    def fetch(known: str, offset: int) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            write(inst.code, ".runctl-manifest.json", manifest_json(m2))
        return inst.fetch_manifest(known, offset, 2000)

    assert read_remote_manifest(fetch, None) == m2


def test_manifest_cache_file(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path / "c" / "m.json")
    assert cache.get("i-1", "p") is None
    cache.put("i-1", "p", {"a": "0" * 64})
    cache.put("i-1", "q", {})
    cache.put("i-2", "p", {"b": "1" * 64})
    assert ManifestCache(tmp_path / "c" / "m.json").get("i-1", "p") == {"a": "0" * 64}
    cache.forget("i-1", "p")
    assert cache.get("i-1", "p") is None and cache.get("i-1", "q") == {}
    cache.forget("i-2")
    assert cache.get("i-2", "p") is None
    (tmp_path / "c" / "m.json").write_text("{not json")
    with pytest.warns(UserWarning):
        assert cache.get("i-1", "q") is None


def test_bundle_gzip_header_is_fixed(project: Path) -> None:
    data = make_bundle(project, plan(collect_files(project), {}))
    assert data[4:8] == b"\0\0\0\0"                   # gzip mtime 0
    assert gzip.decompress(data)[:21] == b".runctl-manifest.json"


def test_files_that_drifted_on_the_instance_are_not_trusted(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    digest = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("a.py", "b.yaml", "c.txt")}
    for name in digest:
        write(inst.code, name, name)
    write(inst.code, ".runctl-manifest.json", manifest_json(digest))
    drifted: list[str] = []
    assert read_remote_manifest(inst.fetch_manifest, digest, drifted=drifted) == digest and drifted == []
    write(inst.code, "b.yaml", "b.yam!")          # the same size, other content
    (inst.code / "c.txt").unlink()
    gone: set[str] = set()
    assert read_remote_manifest(inst.fetch_manifest, digest, drifted=drifted, missing=gone) == {"a.py": digest["a.py"]}
    assert drifted == ["b.yaml", "c.txt"] and gone == {"c.txt"}
    # too many to list: nothing is trusted, everything goes again
    many = {f"m{i}.py": "0" * 64 for i in range(300)}
    write(inst.code, ".runctl-manifest.json", manifest_json(many))
    assert read_remote_manifest(inst.fetch_manifest, None, drifted=drifted) == {} and len(drifted) == 200


def test_the_last_apply_seeds_the_drift_checks_hash_cache(tmp_path: Path) -> None:
    """sync_apply.sh seeds the drift check's hash cache: an unchanged project is not re-read."""
    inst = Instance(tmp_path)
    project = tmp_path / "local"
    for i in range(20):
        write(project, f"pkg/m{i}.py", f"x = {i}\n")
    files = collect_files(project)
    assert inst.apply(make_bundle(project, plan(files, {}), files)).returncode == 0
    cache = inst.root / "runctl" / inst.project / ".code-hashes"
    entries = dict(line.split("\t") for line in cache.read_text().splitlines())
    assert len(entries) == 20 and all(v.split()[-1] == files[k].sha256 for k, v in entries.items())
    drifted: list[str] = []
    assert read_remote_manifest(inst.fetch_manifest, None, drifted=drifted) == {k: v.sha256 for k, v in files.items()}
    assert drifted == []


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_on_both_sides_never_lose_the_trainings_work(tmp_path: Path, seed: int) -> None:
    """Property: across 5 syncs with random local edits, deletions and renames, and random rewrites on
    the instance (a training writing into its code folder), the instance ends each sync with exactly
    the local project's files, and a file the instance changed is never deleted (kept, or overwritten
    only by the local version of that same file)."""
    import random

    rng = random.Random(seed)
    local = tmp_path / "local"
    write(local, "pyproject.toml", "[project]\nname='p'\n")
    for i in range(8):
        write(local, f"src/m{i}.py", f"x = {i}\n")
    inst = Instance(tmp_path)
    written_by_training: dict[str, bytes] = {}
    for round_ in range(5):
        names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*.py"))
        for _ in range(rng.randint(1, 4)):
            action, name = rng.choice(["edit", "delete", "rename", "add"]), rng.choice(names)
            if not (local / name).exists():
                continue
            if action == "edit":
                (local / name).write_text(f"x = {rng.random()!r}\n")
            elif action == "delete":
                (local / name).unlink()
            elif action == "rename":
                (local / name).rename(local / name.replace(".py", f"_r{round_}.py"))
            else:
                write(local, f"src/new_{round_}_{rng.randint(0, 99)}.py", "y = 1\n")
        inst.sync(local)
        on_instance, sent = tree(inst.code), collect_files(local)
        for rel in sent:  # the code is the local project's (a drifted file is sent again)
            assert on_instance.get(rel) == (local / rel).read_bytes(), (seed, round_, rel)
        for rel, data in list(written_by_training.items()):
            if rel in sent:
                del written_by_training[rel]  # the local version of that same file replaced it
            else:
                assert on_instance.get(rel) == data, f"the training's {rel} was lost (seed {seed})"
        managed = list(parse_manifest((inst.code / ".runctl-manifest.json").read_bytes()))
        if managed and rng.random() < 0.7:
            victim = rng.choice(managed)
            data = f"written by the training in round {round_}\n".encode()
            (inst.code / victim).write_bytes(data)
            written_by_training[victim] = data
