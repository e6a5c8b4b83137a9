"""Dataclasses passed between the layers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from .errors import Step, UsageError, cmd
from .tag_keys import (
    CREATED_TAG,
    FROM_SNAPSHOT_TAG,
    GUARDIAN_TAG,
    IMAGE_TAG,
    PROJECT_TAG,
    RESTORE_DEVICE_TAG,
    RUN_ID_TAG,
    RUN_STATE_TAG,
)

INSTANCE_ID_RE = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def validate_instance_id(instance_id: str) -> str:
    """``i-`` + 8 or 17 lowercase hex digits, checked before any call is made."""
    if not INSTANCE_ID_RE.match(instance_id or ""):
        raise UsageError(
            f"'{instance_id}' is not an EC2 instance ID (expected i- followed by 8 or 17 hex digits).",
            [cmd("resources list", "List your instances and copy an ID"),
             Step("IDs look like i-0abc123def4567890")],
        )
    return instance_id


# Project names and run ids become folder names and S3 key parts on the instance: the remote scripts'
# rule (common.sh valid_name, sync_apply.sh), checked here before anything is sent.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a project name or run id, or ``None``."""
    if NAME_RE.fullmatch(text or ""):
        return None
    return ("must start with a letter or digit and hold only letters, digits, '.', '_' or '-' "
            "(at most 100 characters)")


def project_from_folder(folder_name: str) -> str:
    """A valid project name from a folder's name: `My Project (v2)` → `My-Project-v2`."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder_name).strip("-._")[:100].rstrip("-._")
    return name or "project"


SNAPSHOT_ID_RE = re.compile(r"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def validate_snapshot_id(snapshot_id: str) -> str:
    """``snap-`` + 8 or 17 lowercase hex digits, checked before any call is made."""
    if not SNAPSHOT_ID_RE.match(snapshot_id or ""):
        raise UsageError(
            f"'{snapshot_id}' is not an EBS snapshot ID (expected snap- followed by 8 or 17 hex digits).",
            [cmd("resources list", "List runctl's snapshots (rows of kind snapshot) and copy an ID"),
             Step("IDs look like snap-0abc123def4567890")],
        )
    return snapshot_id


@dataclass(frozen=True)
class EbsSnapshot:
    """An EBS snapshot as ``create --from-snapshot`` needs it (from DescribeSnapshots)."""

    snapshot_id: str
    state: str  # pending | completed | error | recoverable | recovering
    size_gb: int
    region: str
    progress: str = ""
    source_instance: str | None = None  # runctl:instance: the instance whose disk it saved
    project: str | None = None  # runctl:project
    device: str | None = None  # runctl:device: where that disk was attached
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    """Where a command acted: the embedded sandbox, or an AWS account + region."""

    kind: str  # "sandbox" | "aws"
    region: str
    account: str | None = None

    def label(self) -> str:
        if self.kind == "sandbox":
            return f"sandbox · {self.region}"
        return f"AWS account {self.account or '?'} · {self.region}"


def _gib(mib: float | None) -> str:
    return "?" if mib is None else f"{mib / 1024:.1f}"


@dataclass(frozen=True)
class GpuMetrics:
    """One GPU as nvidia-smi reports it (None: what it could not say, e.g. ``[N/A]``)."""

    index: int
    name: str
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    uuid: str = ""
    memory_utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None

    @property
    def short_name(self) -> str:
        """``NVIDIA H200`` → ``H200``, ``Tesla T4`` → ``T4``."""
        for prefix in ("NVIDIA ", "Tesla "):
            if self.name.startswith(prefix):
                return self.name[len(prefix):]
        return self.name

    def utilization_text(self) -> str:
        return "?%" if self.utilization_pct is None else f"{self.utilization_pct:g}%"

    def line(self) -> str:
        """``GPU 0: NVIDIA H200  0%  0.0/140.4 GiB``"""
        return (f"GPU {self.index}: {self.name}  {self.utilization_text()}  "
                f"{_gib(self.memory_used_mib)}/{_gib(self.memory_total_mib)} GiB")


def gpus_compact(gpus: list[GpuMetrics]) -> str:
    """``1× H200 0% 0.0/140.4 GiB``; several: their mean utilisation and summed memory."""
    if not gpus:
        return ""
    names = sorted({g.short_name for g in gpus})
    if len(gpus) == 1:
        util = gpus[0].utilization_text()
    else:
        known = [g.utilization_pct for g in gpus if g.utilization_pct is not None]
        util = f"avg {sum(known) / len(known):.0f}%" if known else "?%"
    used = sum(g.memory_used_mib or 0 for g in gpus)
    total = sum(g.memory_total_mib or 0 for g in gpus)
    return f"{len(gpus)}× {'/'.join(names)} {util} {_gib(used)}/{_gib(total)} GiB"


@dataclass
class Instance:
    instance_id: str
    instance_type: str
    state: str
    region: str
    availability_zone: str | None = None
    launch_time: datetime | None = None
    lifecycle: str = "on-demand"  # "on-demand" | "spot"
    spot_request_type: str | None = None  # "one-time" | "persistent" | None
    tags: dict[str, str] = field(default_factory=dict)
    image_id: str | None = None
    root_volume_gb: int | None = None
    public_ip: str | None = None
    private_ip: str | None = None
    iam_instance_profile: str | None = None
    spot_request_id: str | None = None  # the one-time spot request behind a spot instance
    ssm_online: bool | None = None
    world: str | None = None  # where it was seen, e.g. "sandbox · us-east-1"
    gpus: list[GpuMetrics] | None = None  # what nvidia-smi reported (GPU types, read by `status`)
    gpu_note: str | None = None  # why there are no GPU figures (no driver on the image, nvidia-smi failed…)
    warnings: list[str] = field(default_factory=list)  # e.g. paying for an idle GPU

    @property
    def name(self) -> str:
        return self.tags.get("Name", "")

    @property
    def project(self) -> str | None:
        return self.tags.get(PROJECT_TAG)

    @property
    def managed(self) -> bool:
        return PROJECT_TAG in self.tags or CREATED_TAG in self.tags

    @property
    def one_time_spot(self) -> bool:
        return self.lifecycle == "spot" and self.spot_request_type != "persistent"

    def summary(self) -> str:
        lines = [f"{self.instance_id}  {self.instance_type}  {self.state}"
                 + (f"  ({self.lifecycle}{', ' + self.spot_request_type if self.spot_request_type else ''})"
                    if self.lifecycle == "spot" else "")]
        lines.append(f"  region {self.region}" + (f" / {self.availability_zone}" if self.availability_zone else "")
                     + (f"  [{self.world}]" if self.world else ""))
        if self.launch_time:
            lines.append(f"  last started {self.launch_time.isoformat(timespec='seconds')}")
        if self.project:
            lines.append(f"  project {self.project}" + (f", name {self.name}" if self.name else ""))
        if self.image_id:  # what it is and why, as create chose it (runctl:image)
            why = self.tags.get(IMAGE_TAG)
            lines.append(f"  image {self.image_id}" + (f" ({why})" if why else ""))
        if self.ssm_online is not None:
            lines.append(f"  SSM agent {'Online' if self.ssm_online else 'not online'}")
        from .costs.rows import run_tags_as_of

        tags = {**self.tags, **run_tags_as_of(self.tags, self.state)}
        run_state = tags.get(RUN_STATE_TAG)
        if run_state:
            lines.append(f"  training: {run_state} (run {tags.get(RUN_ID_TAG, '?')})")
        guardian = tags.get(GUARDIAN_TAG)
        if guardian:
            lines.append(f"  guardian: {guardian}")
        for gpu in self.gpus or []:
            lines.append(f"  {gpu.line()}")
        if self.gpu_note:
            lines.append(f"  GPU: {self.gpu_note}")
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.tags.get(FROM_SNAPSHOT_TAG):
            lines.append(f"  restored from {self.tags[FROM_SNAPSHOT_TAG]} (attached as "
                         f"{self.tags.get(RESTORE_DEVICE_TAG, '?')})")
        return "\n".join(lines)


    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the summary as Out[…]
        p.text(self.summary())


@dataclass
class RemoteResult:
    """What one SSM command returned (stdout already cut by SSM's 24,000-character limit)."""

    instance_id: str
    command_id: str
    status: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == "Success" and self.exit_code == 0


def shown_name(name: str) -> str:
    """A file name as one line shows it: quoted and escaped (repr) when it holds control characters
    (a checkpoint named with a newline must not break the line it is named in)."""
    return repr(name) if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) else name

