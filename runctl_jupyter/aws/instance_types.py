"""What EC2 says about an instance type (DescribeInstanceTypes): its architectures, its GPUs, its Neuron
devices — asked once per type, region and world in this process (a type's hardware never changes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..errors import Step, UsageError, cmd, translate_aws_errors
from .session import Context

UNKNOWN_TYPE = {"InvalidInstanceType", "InvalidParameterValue"}
# (world, region, instance type) -> what DescribeInstanceTypes said, for this process.
_TYPES: dict[tuple[str, str, str], InstanceTypeFacts] = {}
_TYPES_LOCK = threading.Lock()


@dataclass(frozen=True)
class InstanceTypeFacts:
    """The parts of a DescribeInstanceTypes entry runctl acts on."""

    name: str
    architectures: tuple[str, ...]  # ProcessorInfo.SupportedArchitectures
    gpu_count: int = 0  # GpuInfo.Gpus[].Count, summed
    gpu_name: str | None = None  # e.g. "A10G", "H200"
    gpu_manufacturer: str | None = None  # e.g. "NVIDIA"
    gpu_memory_mib: int | None = None  # each GPU's (GpuInfo.Gpus[].MemoryInfo.SizeInMiB)
    neuron_count: int = 0  # NeuronInfo.NeuronDevices[].Count (Trainium, Inferentia): no GpuInfo
    neuron_name: str | None = None

    @property
    def nvidia_gpus(self) -> bool:
        """Whether the type's GPUs need the NVIDIA driver (every EC2 GPU type but the AMD/Radeon ones)."""
        return self.gpu_count > 0 and (self.gpu_manufacturer or "").upper() == "NVIDIA"

    def gpus_text(self) -> str:
        """``1 NVIDIA A10G GPU``, ``8 NVIDIA H200 GPUs`` ("" without GPUs)."""
        if not self.gpu_count:
            return ""
        maker = f"{self.gpu_manufacturer} " if self.gpu_manufacturer else ""
        return f"{self.gpu_count} {maker}{self.gpu_name or ''} GPU{'s' if self.gpu_count > 1 else ''}".replace("  ", " ")

    def gpus_short(self) -> str | None:
        """``1× A10G``, ``8× H200`` for the cost table (None without NVIDIA GPUs)."""
        return f"{self.gpu_count}× {self.gpu_name or 'GPU'}" if self.nvidia_gpus else None

    def neuron_text(self) -> str:
        if not self.neuron_count:
            return ""
        plural = "s" if self.neuron_count > 1 else ""
        return f"{self.neuron_count} AWS {self.neuron_name or 'Neuron'} device{plural}"


def facts_from_api(entry: dict[str, Any]) -> InstanceTypeFacts:
    gpus = (entry.get("GpuInfo") or {}).get("Gpus") or []
    neurons = (entry.get("NeuronInfo") or {}).get("NeuronDevices") or []
    first = gpus[0] if gpus else {}
    memory = (first.get("MemoryInfo") or {}).get("SizeInMiB")
    return InstanceTypeFacts(
        name=str(entry.get("InstanceType", "?")),
        architectures=tuple((entry.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ()),
        gpu_count=sum(int(g.get("Count") or 0) for g in gpus),
        gpu_name=first.get("Name"), gpu_manufacturer=first.get("Manufacturer"),
        gpu_memory_mib=int(memory) if memory else None,
        neuron_count=sum(int(n.get("Count") or 0) for n in neurons),
        neuron_name=neurons[0].get("Name") if neurons else None,
    )


def describe_type(ctx: Context, instance_type: str, region: str | None = None) -> InstanceTypeFacts:
    """The type's facts (DescribeInstanceTypes, asked once per type and region in this process); a type
    the region does not know is a :class:`UsageError`."""
    region = region or ctx.region
    key = (ctx.world_key, region, instance_type)
    with _TYPES_LOCK:
        known = _TYPES.get(key)
    if known is not None:
        return known
    with translate_aws_errors(f"look up instance type {instance_type}"):
        try:
            found = ctx.client("ec2", region).describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in UNKNOWN_TYPE:
                raise
            raise unknown_type(instance_type, region) from exc
    if not found:
        raise unknown_type(instance_type, region)
    facts = facts_from_api(found[0])
    with _TYPES_LOCK:
        _TYPES[key] = facts
    return facts


def unknown_type(instance_type: str, region: str) -> UsageError:
    return UsageError(
        f"Instance type {instance_type} does not exist in {region}.",
        [Step("Check the spelling: FAMILY.SIZE, e.g. t3.micro, g5.xlarge, c7g.large"),
         Step(f"List the types offered there: `aws ec2 describe-instance-type-offerings --region {region}`"),
         cmd("aws create INSTANCE_TYPE --wait", "Then create with one of them")])


def launch_architecture(facts: InstanceTypeFacts) -> str:
    """``"x86_64"`` or ``"arm64"`` (Graviton): the architecture of the Linux image the type boots."""
    for arch in ("x86_64", "arm64"):
        if arch in facts.architectures:
            return arch
    raise UsageError(
        f"Instance type {facts.name} runs only {', '.join(facts.architectures) or 'an unknown architecture'}; "
        "runctl launches Linux on x86_64 or arm64.",
        [Step("Pick an x86_64 or arm64 (Graviton) type, e.g. t3.micro or t4g.micro"),
         cmd("aws create INSTANCE_TYPE --wait", "Then create again")])
