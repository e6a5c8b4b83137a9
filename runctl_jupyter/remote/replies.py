"""What the on-instance scripts answer, as one dataclass per script (parsed from their ``@runctl``
lines). Refusals and causes are fields the script prints (``refused=no_code``,
``sync_cause=download``), never English on stderr matched here; stderr is only ever shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..models import GpuMetrics
from . import parse_fields, parse_records


def _optional_int(value: str | None) -> int | None:
    """An integer the script may leave empty (an exit code not known yet, a part number): None then."""
    return int(value) if value and value.lstrip("-").isdigit() else None


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class LaunchReply:
    """launch.sh: started, or refused (``running``: another run holds the claim; ``no_code``: nothing
    was ever synced there; ``no_script``: the script is not in the code there; ``no_gpu``:
    ``--nproc-per-node gpu`` on an instance without GPUs; ``no_torch``: torchrun without torch), or
    the code sync failed (``sync_cause``: ``download`` / ``unsafe_bundle`` / ``requirements``, or None
    when unsaid). ``python``: the interpreter that runs it, chosen by ``python_source`` (``setting`` |
    ``image``: the image's PyTorch environment | ``system`` | ``venv``: the project's, on
    ``python_base``); ``torch_warning``: requirements.txt names these PyTorch packages although the
    interpreter has torch."""

    started: bool
    refused: str | None = None
    pid: int = 0
    log: str = ""
    holder_pid: str = "?"          # refused=running: the run that holds the claim (its PID, id, project)
    holder_run_id: str = ""
    holder_project: str = ""
    sync_failed: bool = False
    sync_cause: str | None = None
    kept: list[str] = field(default_factory=list)  # files the instance changed, kept although gone locally
    python: str = ""
    python_source: str = ""
    python_base: str = ""
    nproc: int = 0                 # torchrun's processes per node (0: no torchrun)
    torch_warning: str = ""

    @property
    def python_text(self) -> str:
        """``/opt/pytorch/bin/python (the image's)``: which interpreter, and why."""
        why = {"image": "the image's PyTorch environment", "setting": "the python setting",
               "system": "the system python3",
               "venv": f"the project venv on {self.python_base}" if self.python_base else "the project venv"}
        return f"{self.python} ({why.get(self.python_source, self.python_source or '?')})" if self.python else ""

    @classmethod
    def parse(cls, stdout: str, exit_code: int | None = None) -> LaunchReply:
        f = parse_fields(stdout)
        refused = f.get("refused") or ("running" if exit_code == 3 else None)
        return cls(started=f.get("started") == "1", refused=refused, pid=_int(f.get("pid")), log=f.get("log", ""),
                   holder_pid=f.get("pid", "?") if refused == "running" else "?",
                   holder_run_id=f.get("run_id", "") if refused == "running" else "",
                   holder_project=f.get("project", "") if refused == "running" else "",
                   sync_failed=f.get("sync_failed") == "1", sync_cause=f.get("sync_cause"),
                   kept=[rec["kept"] for rec in parse_records(stdout, "kept")],
                   python=f.get("python", ""), python_source=f.get("python_source", ""),
                   python_base=f.get("python_base", ""), nproc=_int(f.get("nproc")),
                   torch_warning=f.get("torch_warning", ""))


@dataclass(frozen=True)
class StopReply:
    """stop.sh: whether a training was running and was stopped, and how it ended."""

    stopped: bool
    run_id: str | None = None
    pid: str = "?"
    exit_code: str = "?"
    killed: bool = False           # it outlived the wait and got SIGKILL
    still_running: bool = False    # some of its processes survived SIGKILL

    @classmethod
    def parse(cls, stdout: str) -> StopReply:
        f = parse_fields(stdout)
        return cls(stopped=f.get("stopped") == "1", run_id=f.get("run_id") or None, pid=f.get("pid", "?"),
                   exit_code=f.get("exit_code", "?"), killed=f.get("killed") == "1",
                   still_running=f.get("still_running") == "1")


def _instant(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class StatusReply:
    """status.sh: one run's state and, from the same command, the instance's GPUs.

    ``state``: ``running`` | ``exited`` | ``none`` (no run); ``exit_code``: None while running or
    when the process vanished without recording one (``lost``); ``stopped``: ``runctl stop`` ended
    it; ``log``: the log's absolute path (SSM runs each command in a folder of its own);
    ``lock_*``: the run that holds the instance's claim, when one does (it may be another
    project's); ``nvidia_smi``: ``ok`` | ``missing`` (no NVIDIA driver on the image) | ``failed``,
    with ``gpu_error``."""

    project: str = ""
    run_id: str | None = None
    state: str = "none"
    pid: int = 0
    exit_code: int | None = None
    log_size: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    last_checkpoint: str = ""
    lost: bool = False
    stopped: bool = False
    python: str = ""
    log: str = ""
    lock_state: str = ""
    lock_pid: int = 0
    lock_run_id: str = ""
    lock_project: str = ""
    stale_cleaned: bool = False
    gpus: tuple[GpuMetrics, ...] = ()
    nvidia_smi: str = ""
    gpu_error: str = ""

    @property
    def shown_state(self) -> str:
        """What a person is told: ``stopped`` for a run ``runctl stop`` ended, else ``state``."""
        return "stopped" if self.state == "exited" and self.stopped else self.state

    @classmethod
    def parse(cls, stdout: str) -> StatusReply:
        from ..gpus import gpu_lines, parse_query

        f = parse_fields(stdout)
        return cls(project=f.get("project", ""), run_id=f.get("run_id") or None, state=f.get("state", "none"),
                   pid=_int(f.get("pid")), exit_code=_optional_int(f.get("exit_code")),
                   log_size=_int(f.get("log_size")), started=_instant(f.get("started")),
                   ended=_instant(f.get("ended")), last_checkpoint=f.get("last_checkpoint", ""),
                   lost=f.get("lost") == "1", stopped=f.get("stopped") == "1", python=f.get("python", ""),
                   log=f.get("log", ""), lock_state=f.get("lock_state", ""), lock_pid=_int(f.get("lock_pid")),
                   lock_run_id=f.get("lock_run_id", ""), lock_project=f.get("lock_project", ""),
                   stale_cleaned=f.get("stale_cleaned") == "1",
                   gpus=tuple(parse_query(gpu_lines(stdout))), nvidia_smi=f.get("nvidia_smi", ""),
                   gpu_error=f.get("gpu_error", ""))


@dataclass(frozen=True)
class LogUploadReply:
    """log_upload.sh: the byte range of a log it PUT to a presigned URL (``uploaded``), or why not
    (``reason``). ``size`` is the log's size, ``count`` the raw bytes sent from ``offset``,
    ``sha256`` their digest, ``enc`` ``gzip`` | ``raw``; ``exit_code`` the run's, when it has ended
    (read before the size, so a known exit code and ``offset + count == size`` mean the whole log).
    ``complete`` is False when the reply lacks a number it must carry (nothing of it may be trusted)."""

    uploaded: bool
    reason: str = ""
    size: int = 0
    offset: int = 0
    count: int = 0
    sha256: str = ""
    gzip: bool = False
    exit_code: int | None = None
    complete: bool = False

    @classmethod
    def parse(cls, stdout: str) -> LogUploadReply:
        f = parse_fields(stdout)
        numbers = [f.get(k, "") for k in ("size", "offset", "count")]
        complete = all(n.isdigit() for n in numbers)
        size, offset, count = (int(n) for n in numbers) if complete else (0, 0, 0)
        return cls(uploaded=f.get("uploaded") == "1", reason=f.get("reason", ""), size=size, offset=offset,
                   count=count, sha256=f.get("sha256", ""), gzip=f.get("enc") == "gzip",
                   exit_code=_optional_int(f.get("exit_code")), complete=complete)


@dataclass(frozen=True)
class GuardianRecord:
    """guardian_status.sh: the newest guardian record of a run (``found`` False when no run of the
    project has a guardian) and whether its process still runs (``alive``).

    ``state``: ``watching`` | ``acting`` | ``acted`` | ``done``; ``action``: what it did (``autostop``,
    ``spot-notice``, ``budget``, …); ``upload``: ``ok`` | ``partial`` | ``failed`` | ``none`` for
    ``checkpoint`` (``upload_scope`` ``all``: every checkpoint, counted by ``uploaded`` of
    ``upload_total``, ``upload_failed`` not); ``instance``: what became of the instance (``kept
    running: …`` when it could not be stopped or terminated safely); ``at``: when it acted. A fleet
    node's: ``peer`` (``node 2 (exit-1)``: the other node whose end it acted on, action ``fleet-peer``)
    and ``fleet_watch`` (why it cannot see the other nodes' ends, when it cannot)."""

    found: bool
    run_id: str = ""
    state: str = ""
    action: str = ""
    watching: str = ""
    checkpoint: str = ""
    upload: str = ""
    upload_scope: str = ""
    uploaded: int = 0
    upload_total: int = 0
    upload_failed: int = 0
    instance: str = ""
    at: str = ""
    pid: int = 0
    alive: bool = False
    peer: str = ""
    fleet_watch: str = ""

    @classmethod
    def parse(cls, stdout: str) -> GuardianRecord:
        f = parse_fields(stdout)
        found = f.get("guardian") == "1"
        return cls(found=found, run_id=f.get("run_id", ""), state=f.get("state", ""),
                   action=f.get("action", ""), watching=f.get("watching", ""), checkpoint=f.get("checkpoint", ""),
                   upload=f.get("upload", ""), upload_scope=f.get("upload_scope", ""),
                   uploaded=_int(f.get("uploaded")), upload_total=_int(f.get("upload_total")),
                   upload_failed=_int(f.get("upload_failed")), instance=f.get("instance", ""), at=f.get("at", ""),
                   pid=_int(f.get("pid")), alive=found and f.get("guardian_alive", "1") == "1",
                   peer=f.get("peer", ""), fleet_watch=f.get("fleet_watch", ""))


@dataclass(frozen=True)
class UploadedPart:
    relpath: str
    n: int
    etag: str


@dataclass(frozen=True)
class FailedUpload:
    relpath: str
    reason: str
    n: int | None = None           # the part, for a multipart upload


@dataclass(frozen=True)
class UploadReply:
    """upload.sh: the parts of multipart uploads it sent (with their ETags), the PUTs that failed and
    why, and whether it got to its end (``finished``: its ``upload_ok=`` line). Whole-file PUTs are
    not trusted from this reply: runctl checks them in S3 afterwards."""

    parts: tuple[UploadedPart, ...] = ()
    failed: tuple[FailedUpload, ...] = ()
    finished: bool = False

    @classmethod
    def parse(cls, stdout: str) -> UploadReply:
        parts = tuple(UploadedPart(r["part"], _int(r.get("n")), r["etag"])
                      for r in parse_records(stdout, "part") if r.get("etag") and r.get("n", "").isdigit())
        failed = tuple(FailedUpload(r["failed"], r.get("reason", "?"), _optional_int(r.get("n")))
                       for r in parse_records(stdout, "failed"))
        return cls(parts=parts, failed=failed, finished=bool(parse_records(stdout, "upload_ok")))


@dataclass(frozen=True)
class ManifestPage:
    """sync_manifest.sh: no manifest there (``exists`` False); or the caller's cached one is current
    (``match``); or one page of it (``chunk``, tail.sh's page format) with the whole manifest's
    ``sha256``. On the first page, the files that drifted from it (``drifted``; those gone from the
    instance also in ``gone``) of ``drift_total`` in all."""

    exists: bool
    match: bool = False
    sha256: str = ""
    drifted: tuple[str, ...] = ()
    gone: frozenset[str] = frozenset()
    drift_total: int = 0

    @classmethod
    def parse(cls, stdout: str) -> ManifestPage:
        f = parse_fields(stdout)
        records = parse_records(stdout, "drifted")
        return cls(exists=f.get("manifest") != "0", match=f.get("match") == "1",
                   sha256=f.get("manifest_sha256", ""), drifted=tuple(r["drifted"] for r in records),
                   gone=frozenset(r["drifted"] for r in records if r.get("gone") == "1"),
                   drift_total=_int(f.get("drift_total")))
