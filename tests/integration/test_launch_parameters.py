"""Launch parameters that match the image (issue 14 item 7), against the sandbox.

The architecture comes from DescribeInstanceTypes (not a hand list of Graviton families), the root
device's name and minimum size from DescribeImages of the chosen image (not /dev/xvda at 30 GB), and
the volumes are tagged as runctl's like the instance.
"""

from __future__ import annotations

import pytest
from itest_helpers import run_cli

from runctl_jupyter import api
from runctl_jupyter.aws import ec2, instance_types
from runctl_jupyter.errors import UsageError

PROJECT = "launchparams"
# Graviton families the old hand list missed (moto's instance-type data knows them all).
ARM_TYPES = ("m6gd.large", "c6gn.large", "c7gn.large", "m7gd.large", "c8g.large", "m8g.large", "r8g.large",
             "x2gd.large", "i4g.large", "hpc7g.4xlarge", "t4g.micro")


def _volumes(ctx, iid: str) -> list[dict]:
    return ctx.client("ec2").describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]


def _image(ctx, image_id: str) -> dict:
    return ctx.client("ec2").describe_images(ImageIds=[image_id])["Images"][0]


def _runctl_instances(ctx) -> set[str]:
    return {i.instance_id for i in ec2.iter_instances(ctx, ctx.region)}


@pytest.fixture()
def launched(ctx):
    """Instances a test creates (without waiting for SSM), terminated afterwards straight through EC2:
    they hold nothing, and the terminate guard would ask an agent that may not be Online yet."""
    made: list[str] = []
    yield made
    for iid in made:
        if ec2.describe(ctx, iid).state not in ("terminated", "shutting-down"):
            ec2.terminate(ctx, iid)


def test_the_sandbox_knows_the_graviton_types_as_arm64(ctx):
    found = ctx.client("ec2").describe_instance_types(InstanceTypes=list(ARM_TYPES))["InstanceTypes"]
    assert {t["InstanceType"]: t["ProcessorInfo"]["SupportedArchitectures"] for t in found} == {
        t: ["arm64"] for t in ARM_TYPES}
    for instance_type in ARM_TYPES:
        assert ec2.architecture(ctx, instance_type) == "arm64"
    assert ec2.architecture(ctx, "t3.micro") == "x86_64"
    assert ec2.architecture(ctx, "g5.xlarge") == "x86_64"


@pytest.mark.parametrize(("instance_type", "arch"), [("c7gn.large", "arm64"), ("m8g.large", "arm64"),
                                                    ("x2gd.large", "arm64"), ("t3.micro", "x86_64")])
def test_create_boots_the_image_of_the_types_architecture(ctx, launched, instance_type, arch):
    inst = api.create(ctx, instance_type, project=PROJECT)
    launched.append(inst.instance_id)
    image = _image(ctx, inst.image_id)
    assert image["Architecture"] == arch
    assert image["Name"].startswith("al2023-ami-") and image["Name"].endswith(arch)


def test_the_root_volume_is_the_images_own_device_and_carries_runctl_tags(ctx, launched):
    inst = api.create(ctx, "m8g.large", project=PROJECT, name="arch-check")
    launched.append(inst.instance_id)
    image = _image(ctx, inst.image_id)
    root = image["RootDeviceName"]
    image_gb = next(m["Ebs"]["VolumeSize"] for m in image["BlockDeviceMappings"] if m["DeviceName"] == root)
    volumes = _volumes(ctx, inst.instance_id)
    # exactly one volume (no second, billed one beside the image's root), at the image's root device
    assert [[a["Device"] for a in v["Attachments"]] for v in volumes] == [[root]]
    volume = volumes[0]
    assert volume["Size"] >= max(image_gb, 30) and volume["VolumeType"] == "gp3"
    assert inst.root_volume_gb == volume["Size"]
    tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
    assert tags["runctl:project"] == PROJECT and tags["Name"] == "arch-check"
    assert tags[ec2.MANAGED_TAG] == inst.tags[ec2.MANAGED_TAG]
    described = ctx.client("ec2").describe_instances(InstanceIds=[inst.instance_id])["Reservations"][0]["Instances"][0]
    assert [m["DeviceName"] for m in described["BlockDeviceMappings"]] == [root]
    assert described["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True


def test_an_image_rooted_at_sda1_gets_its_root_volume_there(ctx, launched):
    """Ubuntu-style images are rooted at /dev/sda1: a mapping at /dev/xvda would be a second volume."""
    ec2_client = ctx.client("ec2")
    ami = ec2_client.register_image(Name="runctl-test-sda1-rooted", RootDeviceName="/dev/sda1",
                                    VirtualizationType="hvm")["ImageId"]
    assert _image(ctx, ami)["RootDeviceName"] == "/dev/sda1"
    inst = api.create(ctx, "t3.micro", project=PROJECT, ami=ami, disk_gb=40)
    launched.append(inst.instance_id)
    volumes = _volumes(ctx, inst.instance_id)
    assert [[a["Device"] for a in v["Attachments"]] for v in volumes] == [["/dev/sda1"]]
    assert volumes[0]["Size"] == 40  # the configured size: larger than the image's own


def test_an_unknown_instance_type_is_refused_before_anything_is_launched(ctx):
    before = _runctl_instances(ctx)
    with pytest.raises(UsageError) as err:
        api.create(ctx, "t3.hyper", project=PROJECT)
    assert err.value.exit_code == 2
    assert err.value.message == "Instance type t3.hyper does not exist in us-east-1."
    assert "To resolve:" in err.value.render() and "describe-instance-type-offerings" in err.value.render()
    assert ctx.calls["ec2.RunInstances"] == 0
    assert _runctl_instances(ctx) == before
    r = run_cli("--sandbox", "aws", "create", "t3.hyper")
    assert r.returncode == 2 and "t3.hyper does not exist" in r.stderr and "To resolve:" in r.stderr
    assert "Traceback" not in r.stderr
    assert _runctl_instances(ctx) == before


def test_an_image_of_the_other_architecture_is_refused_before_launch(ctx):
    arm_image = ec2.default_ami(ctx, "t4g.micro")
    assert _image(ctx, arm_image)["Architecture"] == "arm64"
    before = _runctl_instances(ctx)
    with pytest.raises(UsageError) as err:
        api.create(ctx, "t3.micro", project=PROJECT, ami=arm_image)
    assert err.value.message == f"Image {arm_image} is arm64, but instance type t3.micro runs x86_64."
    assert ctx.calls["ec2.RunInstances"] == 0 and _runctl_instances(ctx) == before


def test_a_missing_image_is_a_usage_error(ctx):
    with pytest.raises(UsageError) as err:
        api.create(ctx, "t3.micro", project=PROJECT, ami="ami-0123456789abcdef0")
    assert "ami-0123456789abcdef0 was not found in us-east-1" in err.value.message
    assert ctx.calls["ec2.RunInstances"] == 0


def test_the_architecture_is_asked_once_per_type_per_process(sandbox, launched, monkeypatch):
    monkeypatch.setattr(instance_types, "_TYPES", {})  # as in a fresh process
    contexts = [api.context() for _ in range(3)]
    for c in contexts:
        launched.append(api.create(c, "c7gn.large", project=PROJECT).instance_id)
        launched.append(api.create(c, "t3.micro", project=PROJECT).instance_id)
    assert sum(c.calls["ec2.DescribeInstanceTypes"] for c in contexts) == 2  # c7gn.large, t3.micro
    assert sum(c.calls["ec2.DescribeImages"] for c in contexts) == 6  # the image is read per launch
