"""Which image an instance boots, and why (issue 15 items 1 and 5).

Without ``--ami`` or the ``default_image`` setting, the instance type decides, from DescribeInstanceTypes
(not a list of family names):
- NVIDIA GPUs (g4dn, g5, g5g, g6, g6e, gr6, p3, p4d, p4de, p5, p5e…): AWS's Deep Learning AMI with PyTorch
  on Amazon Linux 2023, of the type's architecture, found through its public SSM parameter
  ``/aws/service/deeplearning/ami/ARCH/oss-nvidia-driver-gpu-pytorch-VERSION-amazon-linux-2023/latest/ami-id``.
  Each PyTorch version is its own line, and AWS stops rebuilding old lines, so the lines below are asked
  for newest first in one GetParameters call; when none answers, the Deep Learning Base AMI (NVIDIA
  driver and CUDA, no PyTorch) is used, saying so.
- Neuron devices (trn1, inf2): Amazon Linux 2023, saying that it has no Neuron SDK.
- Graviton (arm64) types: arm64 Amazon Linux 2023; all others x86_64 Amazon Linux 2023.

``--ami`` (or ``default_image``) takes an AMI ID or an SSM parameter name (``/…``). For a GPU type, an
image without the NVIDIA driver (or one runctl cannot tell about) gets a warning before launch: the
training would run on CPU at GPU prices. The choice and its reason are echoed by ``create`` and kept
in the instance's ``runctl:image`` tag, which ``status`` shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ..errors import Step, UsageError, cmd, translate_aws_errors
from .instance_types import InstanceTypeFacts, describe_type, launch_architecture
from .session import Context

AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AL2023_ARM_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
AL2023_PARAMETERS = {"x86_64": AL2023_PARAMETER, "arm64": AL2023_ARM_PARAMETER}
DLAMI_ROOT = "/aws/service/deeplearning/ami"
# The Deep Learning AMI's PyTorch lines on Amazon Linux 2023 (OSS NVIDIA driver), newest first, as the
# DLAMI release notes list them up to 2026-10 (arm64 lags x86_64). One GetParameters call takes 10 names.
PYTORCH_LINES = {"x86_64": ("2.13", "2.11", "2.10", "2.9"), "arm64": ("2.11", "2.10", "2.9")}
IMAGE_NOT_FOUND = {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}
AMI_ID_RE = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")
# Names of plain OS images (no NVIDIA driver): Amazon Linux, Ubuntu, Debian, RHEL, SUSE, Windows.
_PLAIN_OS = re.compile(r"^(al2023-ami-|amzn2?-ami-|ubuntu/images/|debian-|rhel-|suse-|windows_server)", re.I)
_DRIVER_WORDS = ("nvidia", "cuda", "gpu", "deep learning")


def pytorch_parameter(arch: str, version: str) -> str:
    return f"{DLAMI_ROOT}/{arch}/oss-nvidia-driver-gpu-pytorch-{version}-amazon-linux-2023/latest/ami-id"


def base_parameter(arch: str) -> str:
    return f"{DLAMI_ROOT}/{arch}/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"


@dataclass(frozen=True)
class ImageChoice:
    """The image a create launches, what it is, and why runctl picked it."""

    image_id: str
    label: str  # what it is, e.g. "Deep Learning AMI, PyTorch 2.13, NVIDIA driver, Amazon Linux 2023"
    architecture: str
    reason: str  # why, e.g. "g5.xlarge has 1 NVIDIA A10G GPU"
    source: str  # "default" | "--ami" | "default_image"
    parameter: str | None = None  # the SSM parameter it was found through
    has_nvidia_driver: bool | None = None  # None: cannot tell
    image: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # its DescribeImages entry
    warnings: tuple[str, ...] = ()  # said before launch

    def summary(self) -> str:
        """``LABEL, ARCH: REASON`` — what the create line and the runctl:image tag say."""
        return f"{self.label}, {self.architecture}: {self.reason}"


def choose_image(ctx: Context, instance_type: str, ami: str | None = None, *, default_image: str | None = None,
                 default_source: str = "settings") -> ImageChoice:
    """The image for ``instance_type``: ``ami`` (--ami), else ``default_image`` (the setting, which
    ``default_source`` says where it came from), else the type's own (see the module's docstring)."""
    facts = describe_type(ctx, instance_type)
    arch = launch_architecture(facts)
    if ami:
        return _chosen(ctx, facts, arch, ami, "--ami", "chosen with --ami")
    if default_image:
        return _chosen(ctx, facts, arch, default_image, "default_image",
                       f"the default_image setting ({default_source})")
    if facts.nvidia_gpus:
        return _deep_learning_image(ctx, facts, arch)
    image_id = al2023_image_id(ctx, arch)
    if facts.neuron_count:
        reason = (f"{facts.name} has {facts.neuron_text()}, and this image has no Neuron SDK "
                  "(pass --ami with a Neuron Deep Learning AMI to use them)")
    elif arch == "arm64":
        reason = f"{facts.name} is a Graviton (arm64) type without GPU"
    else:
        reason = f"{facts.name} has no GPU"
    return ImageChoice(image_id, "Amazon Linux 2023", arch, reason, "default", AL2023_PARAMETERS[arch],
                       False, describe_image(ctx, image_id))


def al2023_image_id(ctx: Context, arch: str) -> str:
    name = AL2023_PARAMETERS[arch]
    with translate_aws_errors("look up the current Amazon Linux 2023 image"):
        return str(ctx.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])


def deep_learning_parameters(ctx: Context, arch: str) -> dict[str, str]:
    """The Deep Learning AMI parameters of ``arch`` that answer here (PyTorch lines newest first, then the
    base image) → their AMI IDs, in one GetParameters call (names AWS does not know are left out)."""
    names = [pytorch_parameter(arch, v) for v in PYTORCH_LINES[arch]] + [base_parameter(arch)]
    with translate_aws_errors("look up the current Deep Learning AMI"):
        found = ctx.client("ssm").get_parameters(Names=names)["Parameters"]
    values = {p["Name"]: str(p["Value"]) for p in found}
    return {name: values[name] for name in names if name in values}


def _deep_learning_image(ctx: Context, facts: InstanceTypeFacts, arch: str) -> ImageChoice:
    reason = f"{facts.name} has {facts.gpus_text()}"
    found = deep_learning_parameters(ctx, arch)
    for version in PYTORCH_LINES[arch]:
        parameter = pytorch_parameter(arch, version)
        if parameter in found:
            return ImageChoice(found[parameter], f"Deep Learning AMI, PyTorch {version}, NVIDIA driver, Amazon Linux 2023",
                               arch, reason, "default", parameter, True, describe_image(ctx, found[parameter]))
    tried = ", ".join(PYTORCH_LINES[arch])
    base = base_parameter(arch)
    if base in found:
        warning = (f"⚠️ No Deep Learning AMI with PyTorch ({tried}) answers in {ctx.region} for {arch}: the instance "
                   "gets the Deep Learning Base AMI (NVIDIA driver and CUDA, no PyTorch), so your requirements "
                   "must install PyTorch; or pass --ami with an image that has it.")
        return ImageChoice(found[base], "Deep Learning Base AMI, NVIDIA driver, no PyTorch, Amazon Linux 2023", arch,
                           reason, "default", base, True, describe_image(ctx, found[base]), (warning,))
    image_id = al2023_image_id(ctx, arch)
    warning = (f"⚠️ No Deep Learning AMI answers in {ctx.region} for {arch}: the instance gets Amazon Linux 2023, which "
               f"has no NVIDIA driver, so the training would run on CPU at GPU prices. Pass --ami with an image "
               "that has the driver.")
    return ImageChoice(image_id, "Amazon Linux 2023 (no NVIDIA driver)", arch, reason, "default",
                       AL2023_PARAMETERS[arch], False, describe_image(ctx, image_id), (warning,))


def _chosen(ctx: Context, facts: InstanceTypeFacts, arch: str, reference: str, source: str,
            reason: str) -> ImageChoice:
    """An image the user named (--ami or default_image): checked, and judged for a GPU type."""
    image_id, parameter = resolve_reference(ctx, reference, source)
    image = describe_image(ctx, image_id, source)
    image_arch = image.get("Architecture")
    if image_arch and image_arch not in facts.architectures:
        other = "t4g.micro" if image_arch == "arm64" else "t3.micro"
        fix = (Step(f"Or pass an {arch} image with --ami, or leave --ami out (runctl picks the type's own image)")
               if source == "--ami" else
               cmd("config unset default_image", f"Or stop using default_image for {arch} types (runctl picks the "
                                                 "type's own image)"))
        raise UsageError(f"Image {image_id} is {image_arch}, but instance type {facts.name} runs {arch}.",
                         [Step(f"Pass an {image_arch} instance type (e.g. {other})"), fix])
    name = str(image.get("Name") or "no name")
    driver: bool | None = None
    warnings: tuple[str, ...] = ()
    if facts.nvidia_gpus:
        driver = nvidia_driver(image)
        if driver is None and image_id in deep_learning_parameters(ctx, arch).values():
            driver = True
        warnings = _driver_warnings(facts, image_id, name, source, driver)
    if parameter:
        reason += f", through SSM parameter {parameter}"
    return ImageChoice(image_id, name, str(image_arch or arch), reason, source, parameter, driver, image, warnings)


def _driver_warnings(facts: InstanceTypeFacts, image_id: str, name: str, source: str,
                     driver: bool | None) -> tuple[str, ...]:
    if driver:
        return ()
    fix = ("leave --ami out (runctl then picks the Deep Learning AMI)" if source == "--ami" else
           "unset default_image (`config unset default_image`: runctl then picks the Deep Learning AMI)")
    if driver is False:
        return (f"⚠️ Image {image_id} ({name}) has no NVIDIA driver, but {facts.name} has {facts.gpus_text()}: "
                f"the training would run on CPU at GPU prices. To use the GPUs, {fix}, or pick an image with the driver.",)
    return (f"⚠️ runctl cannot tell whether image {image_id} ({name}) has the NVIDIA driver that {facts.name}'s "
            f"{facts.gpus_text()} need (neither its name nor its description says, and no Deep Learning AMI "
            "parameter names it); without it the training would run on CPU at GPU prices. Check with `nvidia-smi` "
            f"on the instance, or {fix}.",)


def nvidia_driver(image: dict[str, Any]) -> bool | None:
    """Whether a DescribeImages entry has the NVIDIA driver, from its name and description: True for
    NVIDIA/CUDA/GPU/Deep Learning images (not Neuron ones), False for a plain OS image, None when they
    do not say."""
    name = str(image.get("Name") or "")
    text = f"{name} {image.get('Description') or ''}".lower()
    if "neuron" in text and "nvidia" not in text:
        return False
    if any(word in text for word in _DRIVER_WORDS):
        return True
    if _PLAIN_OS.match(name):
        return False
    return None


def resolve_reference(ctx: Context, reference: str, source: str) -> tuple[str, str | None]:
    """(image ID, SSM parameter or None) of what --ami / default_image names: an AMI ID, or the name of
    an SSM parameter whose value is one (``/aws/service/…`` or your own ``/golden-ami``)."""
    if not reference.startswith("/"):
        return reference, None
    with translate_aws_errors(f"read SSM parameter {reference}"):
        try:
            value = str(ctx.client("ssm").get_parameter(Name=reference)["Parameter"]["Value"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise
            raise UsageError(f"SSM parameter {reference} ({source}) does not exist in {ctx.region}.",
                             [Step("Check its name: `aws ssm get-parameter --name NAME`"),
                              Step("Or pass an AMI ID (ami-…) instead")]) from exc
    if not AMI_ID_RE.fullmatch(value):
        raise UsageError(f"SSM parameter {reference} ({source}) holds {value[:60]!r}, not an AMI ID.",
                         [Step("Name a parameter whose value is an AMI ID (ami-…), or pass the AMI ID itself")])
    return value, reference


def describe_image(ctx: Context, image_id: str, source: str = "") -> dict[str, Any]:
    """DescribeImages of one image; a missing one is a :class:`UsageError` (images are regional)."""
    def missing() -> UsageError:
        where = f" ({source})" if source and source != "--ami" else ""
        return UsageError(f"Image {image_id}{where} was not found in {ctx.region} (an image belongs to one region).",
                          [Step("Check the ID and the region (--region), or copy the image here"),
                           Step("Or leave --ami out: runctl then picks the instance type's own image")])

    with translate_aws_errors(f"look up image {image_id}"):
        try:
            images = ctx.client("ec2").describe_images(ImageIds=[image_id])["Images"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in IMAGE_NOT_FOUND:
                raise
            raise missing() from exc
    if not images:
        raise missing()
    return dict(images[0])
