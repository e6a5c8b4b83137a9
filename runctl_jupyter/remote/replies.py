"""What the on-instance scripts answer, as one dataclass per script (parsed from their ``@runctl``
lines). Refusals and causes are fields the script prints (``refused=no_code``,
``sync_cause=download``), never English on stderr matched here; stderr is only ever shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import parse_fields, parse_records


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class LaunchReply:
    """launch.sh: started, or refused (``running``: another run holds the claim; ``no_code``: nothing
    was ever synced there; ``no_script``: the script is not in the code there), or the code sync
    failed (``sync_cause``: ``download`` / ``unsafe_bundle`` / ``requirements``, or None when unsaid)."""

    started: bool
    refused: str | None = None
    pid: int = 0
    log: str = ""
    holder_pid: str = "?"          # refused=running: the run that holds the claim
    sync_failed: bool = False
    sync_cause: str | None = None
    kept: list[str] = field(default_factory=list)  # files the instance changed, kept although gone locally

    @classmethod
    def parse(cls, stdout: str, exit_code: int | None = None) -> LaunchReply:
        f = parse_fields(stdout)
        refused = f.get("refused") or ("running" if exit_code == 3 else None)
        return cls(started=f.get("started") == "1", refused=refused, pid=_int(f.get("pid")), log=f.get("log", ""),
                   holder_pid=f.get("pid", "?") if refused == "running" else "?",
                   sync_failed=f.get("sync_failed") == "1", sync_cause=f.get("sync_cause"),
                   kept=[rec["kept"] for rec in parse_records(stdout, "kept")])


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
