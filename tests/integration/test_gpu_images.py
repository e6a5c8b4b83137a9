"""Image by instance family (issue 15 items 1 and 5), against the sandbox.

The type decides from DescribeInstanceTypes: NVIDIA GPU types boot AWS's Deep Learning AMI with PyTorch
(found through its public SSM parameter), Graviton types arm64 Amazon Linux 2023, the others x86_64
Amazon Linux 2023. --ami and the default_image setting override; the create line and `aws status` say
which image and why; a GPU type given an image without the NVIDIA driver is warned about before launch.
The sandbox answers the GPU facts and the Deep Learning AMI parameters from its dated snapshot, and an
unknown parameter as AWS does.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from itest_helpers import run_cli

from runctl_jupyter import api
from runctl_jupyter.aws import ec2, images
from runctl_jupyter.errors import UsageError
from runctl_jupyter.tag_keys import IMAGE_TAG

PROJECT = "gpuimages"
WORLD = "[sandbox · us-east-1]"
DLAMI_X86 = images.pytorch_parameter("x86_64", "2.13")
DLAMI_ARM = images.pytorch_parameter("arm64", "2.11")
PYTORCH_213 = "Deep Learning AMI, PyTorch 2.13, NVIDIA driver, Amazon Linux 2023"
PYTORCH_211 = "Deep Learning AMI, PyTorch 2.11, NVIDIA driver, Amazon Linux 2023"


@pytest.fixture()
def launched(ctx):
    """Instances a test creates (without waiting for SSM), terminated afterwards straight through EC2."""
    made: list[str] = []
    yield made
    for iid in made:
        if ec2.describe(ctx, iid).state not in ("terminated", "shutting-down"):
            ec2.terminate(ctx, iid)


def _param(ctx, name: str, region: str | None = None) -> str:
    return ctx.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]


def _image(ctx, image_id: str) -> dict:
    return ctx.client("ec2").describe_images(ImageIds=[image_id])["Images"][0]


def _create(ctx, launched, instance_type: str, **options) -> tuple[object, list[str]]:
    said: list[str] = []
    inst = api.create(ctx, instance_type, project=PROJECT, echo=said.append, **options)
    launched.append(inst.instance_id)
    return inst, said


# --- what the sandbox answers ---------------------------------------------------------------------

def test_the_sandbox_answers_gpu_facts_from_its_snapshot(ctx):
    found = ctx.client("ec2").describe_instance_types(
        InstanceTypes=["g5.xlarge", "p5e.48xlarge", "p3.2xlarge", "c8g.large", "trn1.2xlarge", "g5g.xlarge"])
    types = {t["InstanceType"]: t for t in found["InstanceTypes"]}
    h200 = types["p5e.48xlarge"]["GpuInfo"]
    assert (h200["Gpus"][0]["Name"], h200["Gpus"][0]["Manufacturer"], h200["Gpus"][0]["Count"]) == ("H200", "NVIDIA", 8)
    assert h200["Gpus"][0]["MemoryInfo"]["SizeInMiB"] == 144384 and h200["TotalGpuMemoryInMiB"] == 8 * 144384
    assert types["g5.xlarge"]["GpuInfo"]["Gpus"][0]["Name"] == "A10G"
    assert types["p3.2xlarge"]["GpuInfo"]["Gpus"][0]["Name"] == "V100"  # moto lacks p3: the snapshot adds it
    assert types["g5g.xlarge"]["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]
    assert types["c8g.large"]["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]
    assert "GpuInfo" not in types["c8g.large"] and "GpuInfo" not in types["trn1.2xlarge"]
    assert types["trn1.2xlarge"]["NeuronInfo"]["NeuronDevices"][0]["Name"] == "Trainium"


def test_the_deep_learning_ami_parameters_name_images_the_region_knows(ctx):
    x86, arm = _param(ctx, DLAMI_X86), _param(ctx, DLAMI_ARM)
    image = _image(ctx, x86)
    assert image["Name"].startswith("Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.13 (Amazon Linux 2023)")
    assert (image["Architecture"], image["RootDeviceName"], image["ImageOwnerAlias"]) == ("x86_64", "/dev/xvda", "amazon")
    assert image["Public"] is True and image["State"] == "available"
    assert _image(ctx, arm)["Architecture"] == "arm64"
    assert _param(ctx, DLAMI_X86, "eu-west-1") not in (x86, arm)  # an image belongs to one region
    base = _param(ctx, images.base_parameter("x86_64"))
    assert "Base" in _image(ctx, base)["Name"]


def test_an_unknown_parameter_is_refused_as_aws_refuses_it(ctx):
    retired = images.pytorch_parameter("x86_64", "1.13")
    with pytest.raises(ClientError) as err:
        ctx.client("ssm").get_parameter(Name=retired)
    assert err.value.response["Error"]["Code"] == "ParameterNotFound"
    both = ctx.client("ssm").get_parameters(Names=[retired, DLAMI_X86])
    assert both["InvalidParameters"] == [retired]
    assert [p["Name"] for p in both["Parameters"]] == [DLAMI_X86]


# --- the image each family gets -------------------------------------------------------------------

@pytest.mark.parametrize(("instance_type", "arch", "label", "reason"), [
    ("t3.micro", "x86_64", "Amazon Linux 2023", "t3.micro has no GPU"),
    ("c8g.large", "arm64", "Amazon Linux 2023", "c8g.large is a Graviton (arm64) type without GPU"),
    ("m8g.large", "arm64", "Amazon Linux 2023", "m8g.large is a Graviton (arm64) type without GPU"),
    ("g5.xlarge", "x86_64", PYTORCH_213, "g5.xlarge has 1 NVIDIA A10G GPU"),
    ("g4dn.xlarge", "x86_64", PYTORCH_213, "g4dn.xlarge has 1 NVIDIA T4 GPU"),
    ("g6e.xlarge", "x86_64", PYTORCH_213, "g6e.xlarge has 1 NVIDIA L40S GPU"),
    ("gr6.4xlarge", "x86_64", PYTORCH_213, "gr6.4xlarge has 1 NVIDIA L4 GPU"),
    ("p3.2xlarge", "x86_64", PYTORCH_213, "p3.2xlarge has 1 NVIDIA V100 GPU"),
    ("p5e.48xlarge", "x86_64", PYTORCH_213, "p5e.48xlarge has 8 NVIDIA H200 GPUs"),
    ("g5g.xlarge", "arm64", PYTORCH_211, "g5g.xlarge has 1 NVIDIA T4g GPU"),
])
def test_each_family_gets_its_image(ctx, instance_type, arch, label, reason):
    choice = images.choose_image(ctx, instance_type)
    assert (choice.label, choice.architecture, choice.reason, choice.source) == (label, arch, reason, "default")
    assert choice.image["Architecture"] == arch and choice.warnings == ()
    if label == "Amazon Linux 2023":
        assert choice.parameter == images.AL2023_PARAMETERS[arch] and choice.image["Name"].startswith("al2023-ami-")
    else:
        assert choice.parameter == (DLAMI_X86 if arch == "x86_64" else DLAMI_ARM)
        assert choice.has_nvidia_driver is True and choice.image_id == _param(ctx, choice.parameter)


def test_a_neuron_type_gets_amazon_linux_and_is_told_it_has_no_neuron_sdk(ctx):
    choice = images.choose_image(ctx, "trn1.2xlarge")
    assert choice.label == "Amazon Linux 2023" and choice.architecture == "x86_64"
    assert choice.reason == ("trn1.2xlarge has 1 AWS Trainium device, and this image has no Neuron SDK "
                             "(pass --ami with a Neuron Deep Learning AMI to use them)")


def test_the_create_line_and_status_say_which_image_and_why(ctx, launched):
    inst, said = _create(ctx, launched, "g5.xlarge")
    ami = _param(ctx, DLAMI_X86)
    assert inst.image_id == ami
    why = f"{PYTORCH_213}, x86_64: g5.xlarge has 1 NVIDIA A10G GPU"
    assert said == [f"{WORLD} Created {inst.instance_id} (g5.xlarge, project {PROJECT}) — {inst.state}\n"
                    f"  image {ami} ({why})"]
    assert inst.tags[IMAGE_TAG] == why
    assert f"\n  image {ami} ({why})\n" in api.status(ctx, inst.instance_id).summary() + "\n"
    arm, said = _create(ctx, launched, "c8g.large")
    assert said[0].endswith(f"\n  image {arm.image_id} (Amazon Linux 2023, arm64: c8g.large is a Graviton (arm64) "
                            "type without GPU)")
    assert _image(ctx, arm.image_id)["Architecture"] == "arm64"


# --- --ami and default_image ----------------------------------------------------------------------

def test_ami_overrides_and_a_plain_image_on_a_gpu_type_is_warned_about_before_launch(ctx, launched):
    plain = ec2.default_ami(ctx, "t3.micro")  # Amazon Linux 2023: no NVIDIA driver
    name = _image(ctx, plain)["Name"]
    inst, said = _create(ctx, launched, "g5.xlarge", ami=plain)
    assert inst.image_id == plain and inst.state in ("pending", "running")  # warned, not refused
    assert said[0] == (f"{WORLD} ⚠️ Image {plain} ({name}) has no NVIDIA driver, but g5.xlarge has 1 NVIDIA A10G "
                       "GPU: the training would run on CPU at GPU prices. To use the GPUs, leave --ami out (runctl "
                       "then picks the Deep Learning AMI), or pick an image with the driver.")
    assert said[1].startswith(f"{WORLD} Created {inst.instance_id}")  # the warning came before launch
    assert said[1].endswith(f"\n  image {plain} ({name}, x86_64: chosen with --ami)")
    assert inst.tags[IMAGE_TAG] == f"{name}, x86_64: chosen with --ami"


def test_an_image_runctl_cannot_judge_gets_a_cannot_tell_warning(ctx):
    ami = ctx.client("ec2").register_image(Name="team-golden-2026-11", RootDeviceName="/dev/xvda",
                                           VirtualizationType="hvm", Architecture="x86_64")["ImageId"]
    choice = images.choose_image(ctx, "p5e.48xlarge", ami)
    assert choice.has_nvidia_driver is None
    assert choice.warnings == (
        f"⚠️ runctl cannot tell whether image {ami} (team-golden-2026-11) has the NVIDIA driver that "
        "p5e.48xlarge's 8 NVIDIA H200 GPUs need (neither its name nor its description says, and no Deep "
        "Learning AMI parameter names it); without it the training would run on CPU at GPU prices. Check "
        "with `nvidia-smi` on the instance, or leave --ami out (runctl then picks the Deep Learning AMI).",)
    assert images.choose_image(ctx, "t3.micro", ami).warnings == ()  # no GPU: nothing to warn about


def test_ami_may_name_a_deep_learning_ami_or_its_parameter(ctx):
    dlami = _param(ctx, DLAMI_X86)
    by_id = images.choose_image(ctx, "g5.xlarge", dlami)
    assert by_id.has_nvidia_driver is True and by_id.warnings == () and by_id.source == "--ami"
    by_name = images.choose_image(ctx, "g5.xlarge", DLAMI_X86)
    assert by_name.image_id == dlami and by_name.parameter == DLAMI_X86
    assert by_name.reason == f"chosen with --ami, through SSM parameter {DLAMI_X86}"


def test_default_image_overrides_the_types_own_and_ami_overrides_it(sandbox, launched):
    ctx = api.context({"default_image": images.AL2023_PARAMETER})
    plain = _param(ctx, images.AL2023_PARAMETER)
    inst, said = _create(ctx, launched, "g5.xlarge")
    assert inst.image_id == plain
    assert said[1].endswith(f"x86_64: the default_image setting (command line), through SSM parameter "
                            f"{images.AL2023_PARAMETER})")
    assert "has no NVIDIA driver" in said[0] and "config unset default_image" in said[0]
    dlami = _param(ctx, DLAMI_X86)
    assert images.choose_image(ctx, "g5.xlarge", dlami, default_image=plain).image_id == dlami


def test_an_image_of_the_other_architecture_through_default_image_says_how_to_stop_using_it(sandbox):
    ctx = api.context({"default_image": images.AL2023_ARM_PARAMETER})
    with pytest.raises(UsageError) as err:
        api.create(ctx, "g5.xlarge", project=PROJECT)
    assert err.value.message.endswith("is arm64, but instance type g5.xlarge runs x86_64.")
    assert "config unset default_image" in err.value.render()
    assert ctx.calls["ec2.RunInstances"] == 0


def test_a_parameter_that_does_not_exist_is_refused_before_launch(sandbox):
    ctx = api.context({"default_image": "/team/golden-ami"})
    with pytest.raises(UsageError) as err:
        api.create(ctx, "t3.micro", project=PROJECT)
    assert err.value.message == ("SSM parameter /team/golden-ami (default_image) does not exist in us-east-1.")
    assert ctx.calls["ec2.RunInstances"] == 0


def test_the_shell_prints_the_warning_before_the_created_line(sandbox, ctx, launched):
    plain = ec2.default_ami(ctx, "t3.micro")
    r = run_cli("--sandbox", "aws", "create", "g4dn.xlarge", "--ami", plain, "--project", PROJECT)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    warned = next(i for i, line in enumerate(lines) if "has no NVIDIA driver" in line)
    created = next(i for i, line in enumerate(lines) if " Created i-" in line)
    assert warned < created and "at GPU prices" in lines[warned]
    launched.append(lines[created].split(" Created ")[1].split()[0])
