"""Incremental code sync — the local, pure part (no AWS here; ``aws/sync.py`` does the I/O).

Flow for ``train --sync-code`` (one bundle + one manifest, DESIGN.md):

1. ``root = project_root(script)``; ``local = collect_files(root)`` (honours ``.gitignore``).
2. Read the instance's manifest with ``remote/sync_manifest.sh PROJECT KNOWN_SHA256 OFFSET``
   through :func:`read_remote_manifest`. The caller keeps the manifest it last applied per
   (instance, project) in a :class:`ManifestCache` and passes its sha256: when the instance still
   has that manifest the reply is one short line (``match=1``) — **an unchanged project costs
   exactly one SSM round trip and uploads 0 bytes**. Otherwise the manifest comes back paged
   (gzip+base64 chunks, same format as log chunks) and is verified against its sha256.
3. ``p = plan(local, remote)``; if ``p.empty`` stop here.
4. ``data = make_bundle(root, p)`` → PUT to S3 → presigned GET URL → ``remote/sync_apply.sh
   PROJECT URL sha256(data)`` → ``cache.put(instance, project, p.manifest)``.

Bundle layout (deterministic: sorted members, mtime 0, uid/gid 0, modes 0644/0755, gzip mtime 0)::

    .runctl-manifest.json   the new manifest, canonical JSON (see :func:`manifest_json`)
    .runctl-delete          relpaths to delete, each followed by a NUL
    files/<relpath>         every file to upload

The manifest is ``{relpath: sha256}``, written one entry per line so that sync_apply.sh can read
its keys with bash alone. Paths that are not valid UTF-8 or hold control characters are skipped
with a warning (they cannot round-trip through JSON and bash safely).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BackendError
from .sync_scope import (
    ALWAYS_EXCLUDED_DIRS,
    IGNORE_FILES,
    UNREMARKABLE,
    GitIgnore,
    IgnorePattern,
    always_excluded,
    check_project_name,
    check_sync_root,
    check_syntax,
    choose_project,
    git_exclude_file,
    project_root,
    read_ignore_file,
)

__all__ = [
    "ALWAYS_EXCLUDED_DIRS",
    "always_excluded",
    "check_project_name",
    "check_sync_root",
    "check_syntax",
    "choose_project",
    "MANIFEST_NAME",
    "DELETE_LIST_NAME",
    "FileEntry",
    "GitIgnore",
    "IgnorePattern",
    "ManifestCache",
    "SyncError",
    "SyncPlan",
    "collect_files",
    "make_bundle",
    "manifest_json",
    "manifest_sha256",
    "parse_manifest",
    "plan",
    "project_root",
    "read_remote_manifest",
    "sha256_bytes",
]

MANIFEST_NAME = ".runctl-manifest.json"
DELETE_LIST_NAME = ".runctl-delete"
FILES_PREFIX = "files/"
#: Names reserved at the top of the remote code/ directory.
RESERVED_ROOT_NAMES = frozenset({MANIFEST_NAME, DELETE_LIST_NAME})

_SHA256 = re.compile(r"[0-9a-f]{64}")


class SyncError(BackendError):
    """Code sync could not be prepared or its reply could not be understood."""


# --------------------------------------------------------------------------- collecting files

@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str
    mode: int  # normalised: 0o755 if any execute bit is set, else 0o644


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _path_problem(rel: str) -> str | None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in rel):
        return "its name holds control characters"
    return None


def collect_files(root: str | os.PathLike[str], excluded: dict[str, str] | None = None) -> dict[str, FileEntry]:
    """Every file to sync under ``root``: ``{posix relpath: FileEntry}``.

    Honours ``.git/info/exclude`` and every ``.gitignore`` and ``.runctlignore`` (nested ones
    override outer ones); always leaves out credentials and keys, VCS folders, virtualenvs, caches and
    ``checkpoints/`` (:func:`always_excluded`), recording in ``excluded`` (relpath → why) those the
    project's own ignore rules do not already leave out, VCS folders and caches aside. A
    symlink is followed only if it resolves inside ``root`` (its target's content is sent as a regular
    file); one pointing outside, or dangling, is skipped.
    """
    root_path = Path(root).absolute()
    real_root = root_path.resolve()
    files: dict[str, FileEntry] = {}
    base_rules = read_ignore_file(git_exclude_file(root_path), "")
    visited: set[Path] = set()

    def inside_root(p: Path) -> Path | None:
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real == real_root or real_root in real.parents:
            return real
        return None

    def skipped(rel: str, why: str) -> None:
        """Said once with the exclusions (front ends print them), not as a Python warning."""
        if excluded is not None:
            excluded[rel] = why
        else:
            warnings.warn(f"runctl sync: skipping {rel!r}: {why}", stacklevel=4)

    def walk(folder: Path, rel_dir: str, rules: GitIgnore) -> None:
        real_folder = folder.resolve()
        if real_folder in visited:          # a symlink loop, or a directory reached twice
            return
        visited.add(real_folder)
        for ignore_file in IGNORE_FILES:
            rules = rules.extended(read_ignore_file(folder / ignore_file, rel_dir))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped(f"{rel_dir or '.'}/", f"cannot read it ({exc.strerror or exc})")
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                real = inside_root(path)
                if real is None:
                    continue
                is_dir = real.is_dir()
            else:
                is_dir = entry.is_dir(follow_symlinks=False)
                if not is_dir and not entry.is_file(follow_symlinks=False):
                    continue                # sockets, fifos, devices
            decision = rules.decision(rel, is_dir)
            why = always_excluded(path, is_dir, decision)
            if why is not None:
                if excluded is not None and not decision and why not in UNREMARKABLE:
                    excluded[rel + ("/" if is_dir else "")] = why  # the user's own rules did not leave it out
                continue
            if decision:
                continue
            if not rel_dir and entry.name in RESERVED_ROOT_NAMES:
                continue
            problem = _path_problem(rel)
            if problem:
                skipped(rel, problem)
                continue
            if is_dir:
                walk(path, rel, rules)
                continue
            try:
                digest, size = _sha256_file(path)
                mode = path.stat().st_mode
            except OSError as exc:
                skipped(rel, f"cannot read it ({exc.strerror or exc})")
                continue
            files[rel] = FileEntry(size, digest, 0o755 if mode & 0o111 else 0o644)

    walk(root_path, "", base_rules)
    return dict(sorted(files.items()))


# --------------------------------------------------------------------------- manifest + plan

def manifest_json(manifest: Mapping[str, str]) -> str:
    """Canonical manifest text: sorted, one ``"path": "sha256"`` entry per line, UTF-8, no ``\\uXXXX``."""
    for path, digest in manifest.items():
        if not _SHA256.fullmatch(digest):
            raise SyncError(f"Manifest entry {path!r} has no sha256 ({digest!r}).")
        problem = _path_problem(path)
        if problem or path.startswith("/") or ".." in path.split("/"):
            raise SyncError(f"Manifest path {path!r} cannot be synced.")
    return json.dumps(dict(sorted(manifest.items())), indent=0, ensure_ascii=False,
                      separators=(",", ": ")) + "\n"


def manifest_sha256(manifest: Mapping[str, str]) -> str:
    """sha256 of :func:`manifest_json` — what ``sha256sum`` gives for the file on the instance."""
    return hashlib.sha256(manifest_json(manifest).encode("utf-8")).hexdigest()


def parse_manifest(text: str | bytes) -> dict[str, str]:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SyncError(f"The instance's code manifest is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in data.items()
    ):
        raise SyncError("The instance's code manifest is not a {path: sha256} object.")
    return data


@dataclass(frozen=True)
class SyncPlan:
    upload: list[str]
    delete: list[str]
    unchanged: int
    manifest: dict[str, str] = field(default_factory=dict)  # the manifest after applying

    @property
    def empty(self) -> bool:
        return not self.upload and not self.delete


def plan(local_files: Mapping[str, FileEntry], remote_manifest: Mapping[str, str]) -> SyncPlan:
    """Upload what is new or changed; delete only what runctl put there (in the remote manifest)
    and is gone locally. Anything else on the instance (outputs, checkpoints/) is never touched."""
    upload = sorted(p for p, e in local_files.items() if remote_manifest.get(p) != e.sha256)
    delete = sorted(p for p in remote_manifest if p not in local_files)
    unchanged = len(local_files) - len(upload)
    manifest = {p: e.sha256 for p, e in sorted(local_files.items())}
    return SyncPlan(upload=upload, delete=delete, unchanged=unchanged, manifest=manifest)


# --------------------------------------------------------------------------- bundle

def _tar_member(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    tar.addfile(info, io.BytesIO(data))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_bundle(
    root: str | os.PathLike[str],
    sync_plan: SyncPlan,
    local_files: Mapping[str, FileEntry] | None = None,
) -> bytes:
    """The tar.gz sync_apply.sh applies. Same project + same plan → byte-identical bundle.

    File modes come from ``local_files`` when given (else from the disk). Raises
    :class:`SyncError` if a file changed since :func:`collect_files` (collect again)."""
    root_path = Path(root).absolute()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_member(tar, MANIFEST_NAME, manifest_json(sync_plan.manifest).encode("utf-8"), 0o644)
        delete_list = b"".join(p.encode("utf-8") + b"\0" for p in sorted(sync_plan.delete))
        _tar_member(tar, DELETE_LIST_NAME, delete_list, 0o644)
        for rel in sorted(sync_plan.upload):
            path = root_path / rel
            try:
                data = path.read_bytes()
                mode = path.stat().st_mode
            except OSError as exc:
                raise SyncError(f"Cannot read {rel} for code sync: {exc}.",
                                ["Run the command again (files are collected afresh)."]) from None
            if hashlib.sha256(data).hexdigest() != sync_plan.manifest.get(rel):
                raise SyncError(f"{rel} changed while the code bundle was being made.",
                                ["Run the command again (files are collected afresh)."])
            if local_files is not None and rel in local_files:
                mode = local_files[rel].mode
            _tar_member(tar, FILES_PREFIX + rel, data, 0o755 if mode & 0o111 else 0o644)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# --------------------------------------------------------------------------- remote manifest

def read_remote_manifest(
    fetch: Callable[[str, int], str],
    cached: Mapping[str, str] | None,
    *,
    max_restarts: int = 3,
    drifted: list[str] | None = None,
    missing: set[str] | None = None,
) -> dict[str, str]:
    """What the instance's code folder holds, via ``fetch(known_sha256, offset) -> sync_manifest.sh
    stdout``: its manifest, less the files that drifted from it (changed on the instance, or gone),
    which are listed in ``drifted`` (those gone from the instance also in ``missing``) so that the
    plan sends them again.

    With ``cached`` (what this machine last applied there) still current, one call answers
    ``match=1`` and the cache is used. An instance without a manifest gives ``{}``; so does one with
    more drifted files than it could list (everything is sent again).
    """
    from .logs import decode_chunk  # same chunk format as log tails
    from .remote.replies import ManifestPage

    drift: list[str] = []
    gone: set[str] = set()
    drift_total = 0

    def trusted(manifest: Mapping[str, str]) -> dict[str, str]:
        if drifted is not None:
            drifted[:] = drift
        if missing is not None:
            missing.clear()
            missing.update(gone)
        if drift_total > len(drift):
            return {}
        return {rel: digest for rel, digest in manifest.items() if rel not in set(drift)}

    known = manifest_sha256(cached) if cached is not None else ""
    for _ in range(max_restarts + 1):
        parts: list[bytes] = []
        offset = 0
        expected: str | None = None
        changed = False
        while True:
            stdout = fetch(known, offset)
            page = ManifestPage.parse(stdout)
            if offset == 0:
                drift, gone, drift_total = list(page.drifted), set(page.gone), page.drift_total
            if not page.exists:
                return {}
            if page.match and cached is not None:
                return trusted(cached)
            sha = page.sha256
            if not _SHA256.fullmatch(sha):
                raise SyncError("sync_manifest.sh gave no manifest checksum.", details=[stdout[:200]])
            if expected is None:
                expected = sha
            elif sha != expected:
                changed = True             # rewritten between pages: start again
                break
            chunk = decode_chunk(stdout)
            if chunk.offset != offset:
                raise SyncError("sync_manifest.sh answered for the wrong offset.")
            parts.append(chunk.data)
            offset = chunk.end
            if offset >= chunk.size:
                break
            if not chunk.data:
                raise SyncError("sync_manifest.sh returned an empty page before the end.")
        if changed:
            continue
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() == expected:
            return trusted(parse_manifest(data))
    raise SyncError("The instance's code manifest kept changing while it was read.",
                    ["Wait for the other sync to finish, then run the command again."])


class ManifestCache:
    """Per (instance, project) copy of the manifest this machine last applied (a local JSON file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            warnings.warn(f"runctl sync: ignoring unreadable cache {self.path}: {exc}", stacklevel=3)
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _key(instance_id: str, project: str) -> str:
        return f"{instance_id}/{project}"

    def get(self, instance_id: str, project: str) -> dict[str, str] | None:
        entry = self._load().get(self._key(instance_id, project))
        return dict(entry) if isinstance(entry, dict) else None

    def put(self, instance_id: str, project: str, manifest: Mapping[str, str]) -> None:
        data = self._load()
        data[self._key(instance_id, project)] = dict(manifest)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def forget(self, instance_id: str, project: str | None = None) -> None:
        data = self._load()
        prefix = f"{instance_id}/"
        keys = [k for k in data if (k == self._key(instance_id, project) if project else k.startswith(prefix))]
        if not keys:
            return
        for k in keys:
            del data[k]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
