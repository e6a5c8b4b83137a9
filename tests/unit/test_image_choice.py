"""Image choice with stubbed EC2/SSM answers (issue 15 items 1 and 5): what the sandbox cannot show —
a region where no PyTorch line of the Deep Learning AMI answers any more, or none at all — and the pure
parts (the driver judgement, the default_image setting's values, the status line)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from runctl_jupyter import config
from runctl_jupyter.aws import images, instance_types
from runctl_jupyter.errors import UsageError
from runctl_jupyter.models import Instance
from runctl_jupyter.tag_keys import IMAGE_TAG

AMI = "ami-0123456789abcdef0"
BASE_AMI = "ami-0fedcba9876543210"


class FakeContext:
    region = "eu-west-1"
    world_key = "stub"

    def __init__(self):
        kw = {"region_name": self.region, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.clients = {"ec2": boto3.client("ec2", **kw), "ssm": boto3.client("ssm", **kw)}
        self.stubs = {name: Stubber(c) for name, c in self.clients.items()}

    def client(self, service, region=None):
        return self.clients[service]


@pytest.fixture()
def fake(monkeypatch):
    monkeypatch.setattr(instance_types, "_TYPES", {})
    ctx = FakeContext()
    for stub in ctx.stubs.values():
        stub.activate()
    yield ctx
    for stub in ctx.stubs.values():
        stub.assert_no_pending_responses()


def _gpu_type(fake, name="g5.xlarge", arch="x86_64"):
    fake.stubs["ec2"].add_response("describe_instance_types", {"InstanceTypes": [{
        "InstanceType": name, "ProcessorInfo": {"SupportedArchitectures": [arch]},
        "GpuInfo": {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": 1,
                              "MemoryInfo": {"SizeInMiB": 22888}}], "TotalGpuMemoryInMiB": 22888}}]},
        {"InstanceTypes": [name]})


def _dlami_names(arch="x86_64"):
    return [images.pytorch_parameter(arch, v) for v in images.PYTORCH_LINES[arch]] + [images.base_parameter(arch)]


def _image(image_id, name, arch="x86_64"):
    return {"Images": [{"ImageId": image_id, "Name": name, "Architecture": arch, "RootDeviceName": "/dev/xvda"}]}


def test_the_lines_are_asked_newest_first_in_one_call_and_the_newest_answering_wins(fake):
    _gpu_type(fake)
    line = images.pytorch_parameter("x86_64", "2.11")  # 2.13 retired here: GetParameters leaves it out
    fake.stubs["ssm"].add_response("get_parameters", {
        "Parameters": [{"Name": images.base_parameter("x86_64"), "Value": BASE_AMI},
                       {"Name": line, "Value": AMI}], "InvalidParameters": _dlami_names()[:1]},
        {"Names": _dlami_names()})
    fake.stubs["ec2"].add_response("describe_images", _image(AMI, "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.11"),
                                   {"ImageIds": [AMI]})
    choice = images.choose_image(fake, "g5.xlarge")
    assert (choice.image_id, choice.parameter, choice.warnings) == (AMI, line, ())
    assert choice.summary() == ("Deep Learning AMI, PyTorch 2.11, NVIDIA driver, Amazon Linux 2023, x86_64: "
                                "g5.xlarge has 1 NVIDIA A10G GPU")


def test_without_a_pytorch_line_the_base_image_is_used_and_said(fake):
    _gpu_type(fake)
    fake.stubs["ssm"].add_response("get_parameters", {
        "Parameters": [{"Name": images.base_parameter("x86_64"), "Value": BASE_AMI}],
        "InvalidParameters": _dlami_names()[:-1]}, {"Names": _dlami_names()})
    fake.stubs["ec2"].add_response("describe_images", _image(BASE_AMI, "Deep Learning Base OSS Nvidia Driver GPU AMI"),
                                   {"ImageIds": [BASE_AMI]})
    choice = images.choose_image(fake, "g5.xlarge")
    assert choice.image_id == BASE_AMI and choice.has_nvidia_driver is True
    assert choice.label == "Deep Learning Base AMI, NVIDIA driver, no PyTorch, Amazon Linux 2023"
    assert choice.warnings == (
        "⚠️ No Deep Learning AMI with PyTorch (2.13, 2.11, 2.10, 2.9) answers in eu-west-1 for x86_64: the instance "
        "gets the Deep Learning Base AMI (NVIDIA driver and CUDA, no PyTorch), so your requirements must install "
        "PyTorch; or pass --ami with an image that has it.",)


def test_without_any_deep_learning_ami_the_gpu_type_gets_amazon_linux_and_a_warning(fake):
    _gpu_type(fake, "g5g.xlarge", "arm64")
    fake.stubs["ssm"].add_response("get_parameters", {"Parameters": [], "InvalidParameters": _dlami_names("arm64")},
                                   {"Names": _dlami_names("arm64")})
    fake.stubs["ssm"].add_response("get_parameter", {"Parameter": {"Name": images.AL2023_ARM_PARAMETER, "Value": AMI}},
                                   {"Name": images.AL2023_ARM_PARAMETER})
    fake.stubs["ec2"].add_response("describe_images", _image(AMI, "al2023-ami-2023.9-arm64", "arm64"), {"ImageIds": [AMI]})
    choice = images.choose_image(fake, "g5g.xlarge")
    assert choice.has_nvidia_driver is False and choice.architecture == "arm64"
    assert "the training would run on CPU at GPU prices" in choice.warnings[0]


@pytest.mark.parametrize(("name", "description", "expected"), [
    ("Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.13 (Amazon Linux 2023) 20261003", "", True),
    ("my-cuda-12-image", "", True),
    ("team-image", "built on the NVIDIA GPU-optimized AMI", True),
    ("Deep Learning AMI Neuron (Ubuntu 22.04)", "Neuron SDK", False),
    ("al2023-ami-2023.9.20251208.0-kernel-6.1-x86_64", "Amazon Linux 2023 AMI", False),
    ("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251201", "Canonical, Ubuntu", False),
    ("team-golden-2026-11", "", None),
    ("", None, None),
])
def test_the_driver_is_judged_from_the_images_name_and_description(name, description, expected):
    assert images.nvidia_driver({"Name": name, "Description": description}) is expected


@pytest.mark.parametrize("value", ["ami-0123456789abcdef0", "ami-12345678", "/golden-ami",
                                   "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"])
def test_default_image_takes_an_ami_id_or_a_parameter_name(value):
    assert config.parse_value("default_image", value, "config set") == value


@pytest.mark.parametrize(("value", "why"), [("resolve:ssm:/golden-ami", "without resolve:ssm: (/golden-ami)"),
                                            ("ami-XYZ", "must be an AMI ID"), ("golden", "must be an AMI ID"),
                                            ("/bad name", "SSM parameter name")])
def test_default_image_refuses_other_values(value, why):
    with pytest.raises(UsageError) as err:
        config.parse_value("default_image", value, "config set")
    assert why in err.value.message


def test_status_names_the_image_and_why_when_create_said():
    why = "Deep Learning AMI, PyTorch 2.13, NVIDIA driver, Amazon Linux 2023, x86_64: g5.xlarge has 1 NVIDIA A10G GPU"
    inst = Instance("i-0123456789abcdef0", "g5.xlarge", "running", "us-east-1", image_id=AMI,
                    tags={IMAGE_TAG: why, "runctl:project": "p"})
    assert f"\n  image {AMI} ({why})" in inst.summary()
    bare = Instance("i-0123456789abcdef0", "t3.micro", "running", "us-east-1", image_id=AMI)
    assert f"\n  image {AMI}" in bare.summary() and "(" not in bare.summary().split("image ")[1]
