"""The package's dated EC2 snapshot (runctl_jupyter/sandbox/data/ec2_catalog.json), read once.

What the sandbox answers from it, as prices.py does for prices:
- DescribeInstanceTypes for the GPU, Neuron and Graviton types it lists (GPU count, model and memory,
  architectures), laid over moto's own data, and the types moto lacks (p3);
- the public SSM parameters of AWS's Deep Learning AMIs (``/aws/service/deeplearning/ami/…``), in every
  region, each pointing at an image that DescribeImages knows there (owner ``amazon``, public, rooted at
  /dev/xvda). A name it does not hold stays unknown: GetParameter answers ParameterNotFound, as AWS does.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent / "data" / "ec2_catalog.json"


@functools.cache
def snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def instance_types() -> dict[str, dict[str, Any]]:
    """Type name → its DescribeInstanceTypes fields (InstanceType, VCpuInfo, MemoryInfo, ProcessorInfo,
    GpuInfo / NeuronInfo where it has them)."""
    return dict(snapshot()["instance_types"])


def instance_type(name: str) -> dict[str, Any] | None:
    return snapshot()["instance_types"].get(name)


def image_id(region: str, parameter: str) -> str:
    """The sandbox's AMI ID for a public parameter in a region: stable, distinct per region (as AWS's are)."""
    digest = hashlib.sha256(f"{region}|{parameter}".encode()).hexdigest()
    return "ami-" + digest[:17]


def public_images(region: str) -> list[dict[str, Any]]:
    """One entry per public parameter: {parameter, image_id, name, description, architecture,
    root_device_name, creation_date (datetime), owner_id}."""
    owner = str(snapshot()["image_owner"])
    found = []
    for parameter, image in sorted(snapshot()["public_images"].items()):
        found.append({
            "parameter": parameter, "image_id": image_id(region, parameter), "name": image["Name"],
            "description": image["Description"], "architecture": image["Architecture"],
            "root_device_name": image["RootDeviceName"], "owner_id": owner,
            "creation_date": datetime.fromisoformat(image["CreationDate"].replace("Z", "+00:00")),
        })
    return found
