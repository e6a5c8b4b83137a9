"""The root block device mapping follows the image (issue 14 item 7), with stubbed EC2/SSM answers:
an image rooted at /dev/sda1 whose snapshot is larger than the configured size (moto's images are
all 15 GB, so the sandbox cannot show this case) launches with one volume there, of the image's size."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from runctl_jupyter.aws import ec2, instance_types

AMI = "ami-0123456789abcdef0"


class FakeContext:
    """What ec2.create needs of a Context, with stubbed clients (nothing leaves the process)."""

    region = "eu-west-1"
    world_key = "stub"

    def __init__(self):
        kw = {"region_name": self.region, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.clients = {"ec2": boto3.client("ec2", **kw), "ssm": boto3.client("ssm", **kw)}
        self.stubs = {name: Stubber(c) for name, c in self.clients.items()}
        self.sent: dict = {}  # the RunInstances parameters
        self.clients["ec2"].meta.events.register(
            "provide-client-params.ec2.RunInstances", lambda params, **_: self.sent.update(params))

    def client(self, service, region=None):
        return self.clients[service]

    def now(self):
        return datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _image(root: str, size: int, arch: str = "x86_64") -> dict:
    return {"Images": [{"ImageId": AMI, "Architecture": arch, "RootDeviceName": root, "RootDeviceType": "ebs",
                        "BlockDeviceMappings": [
                            {"DeviceName": root, "Ebs": {"SnapshotId": "snap-0123456789abcdef0",
                                                         "VolumeSize": size, "VolumeType": "gp3"}},
                            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}]}


def _types(name: str, archs: list[str]) -> dict:
    return {"InstanceTypes": [{"InstanceType": name, "ProcessorInfo": {"SupportedArchitectures": archs}}]}


@pytest.fixture()
def fake(monkeypatch):
    monkeypatch.setattr(instance_types, "_TYPES", {})
    ctx = FakeContext()
    for stub in ctx.stubs.values():
        stub.activate()
    yield ctx
    for stub in ctx.stubs.values():
        stub.assert_no_pending_responses()


def _launched(ctx, instance_type: str) -> dict:
    return {"Instances": [{"InstanceId": "i-0123456789abcdef0", "InstanceType": instance_type,
                           "State": {"Name": "pending"}, "ImageId": AMI}]}


@pytest.mark.parametrize(("configured", "image_gb", "expected"), [(30, 64, 64), (100, 8, 100), (30, 30, 30)])
def test_the_root_mapping_names_the_images_device_at_no_less_than_its_size(fake, configured, image_gb, expected):
    ec2_stub = fake.stubs["ec2"]
    ec2_stub.add_response("describe_instance_types", _types("g5.xlarge", ["x86_64"]),
                          {"InstanceTypes": ["g5.xlarge"]})
    ec2_stub.add_response("describe_images", _image("/dev/sda1", image_gb), {"ImageIds": [AMI]})
    expected_params = {
        "ImageId": AMI, "InstanceType": "g5.xlarge", "MinCount": 1, "MaxCount": 1, "ClientToken": ANY,
        "TagSpecifications": ANY, "MetadataOptions": ANY,
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": expected, "VolumeType": "gp3",
                                                                     "DeleteOnTermination": True}}]}
    ec2_stub.add_response("run_instances", _launched(fake, "g5.xlarge"), expected_params)
    ec2.create(fake, "g5.xlarge", project="p", ami=AMI, disk_gb=configured)
    instance_tags = {t["Key"]: t["Value"] for t in fake.sent["TagSpecifications"][0]["Tags"]}
    assert instance_tags["runctl:disk-gb"] == str(expected)


def test_volumes_are_tagged_like_the_instance(fake):
    ec2_stub = fake.stubs["ec2"]
    ec2_stub.add_response("describe_instance_types", _types("m8g.large", ["arm64"]), {"InstanceTypes": ["m8g.large"]})
    fake.stubs["ssm"].add_response("get_parameter", {"Parameter": {"Name": ec2.AL2023_ARM_PARAMETER, "Value": AMI}},
                                   {"Name": ec2.AL2023_ARM_PARAMETER})
    ec2_stub.add_response("describe_images", _image("/dev/xvda", 8, "arm64"), {"ImageIds": [AMI]})
    ec2_stub.add_response("run_instances", _launched(fake, "m8g.large"), None)
    ec2.create(fake, "m8g.large", project="p", name="n")
    sent = fake.sent
    specs = {s["ResourceType"]: {t["Key"]: t["Value"] for t in s["Tags"]} for s in sent["TagSpecifications"]}
    assert specs["volume"] == {"Name": "n", "runctl:project": "p", ec2.MANAGED_TAG: "2026-11-02T09:30:00+00:00"}
    assert specs["volume"].items() <= specs["instance"].items()
    assert sent["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": ec2.ROOT_GB, "VolumeType": "gp3", "DeleteOnTermination": True}}]


def test_the_architecture_is_cached_and_unknown_types_refused(fake):
    ec2_stub = fake.stubs["ec2"]
    ec2_stub.add_response("describe_instance_types", _types("t2.micro", ["i386", "x86_64"]),
                          {"InstanceTypes": ["t2.micro"]})
    assert ec2.architecture(fake, "t2.micro") == "x86_64"
    assert ec2.architecture(fake, "t2.micro") == "x86_64"  # no second call: the stub has none queued
    ec2_stub.add_client_error("describe_instance_types", "InvalidInstanceType",
                              "The following supplied instance types do not exist: [t3.hyper]")
    with pytest.raises(ec2.UsageError) as err:
        ec2.architecture(fake, "t3.hyper")
    assert err.value.exit_code == 2 and err.value.message == "Instance type t3.hyper does not exist in eu-west-1."
    ec2_stub.add_response("describe_instance_types", _types("mac2.metal", ["arm64_mac"]),
                          {"InstanceTypes": ["mac2.metal"]})
    with pytest.raises(ec2.UsageError, match="runs only arm64_mac"):
        ec2.architecture(fake, "mac2.metal")
