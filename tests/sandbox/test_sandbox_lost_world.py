"""A new sandbox server starts with an empty world: the user hears that the previous one is gone, and
its leftovers (instance folders, command outputs, snapshot copies) are cleaned up."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from runctl_jupyter import api, api_sandbox
from runctl_jupyter.sandbox import control


def _launch(info: control.SandboxInfo) -> str:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=info.endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_a_restarted_sandbox_says_the_old_world_is_gone_and_clears_its_leftovers(tmp_path):
    first = control.start(tmp_path)
    try:
        iid = _launch(first)
        (tmp_path / "instances" / iid).mkdir(parents=True, exist_ok=True)
        (tmp_path / "instances" / iid / "marker").write_text("old disk")
        assert first.lost_instances == ()
    finally:
        control.stop(tmp_path)
    second = control.start(tmp_path)
    try:
        assert second.lost_instances == (iid,)
        assert not (tmp_path / "instances" / iid).exists()
        assert control.start(tmp_path).lost_instances == ()  # attaching to the running one loses nothing
    finally:
        control.stop(tmp_path)


def test_sandbox_start_tells_the_user(monkeypatch: pytest.MonkeyPatch, tmp_path):
    lost = control.SandboxInfo(tmp_path, "http://127.0.0.1:1", 1, 1, "", ("i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"))
    monkeypatch.setattr(control, "start", lambda *_a, **_k: lost)
    monkeypatch.setattr(api_sandbox, "attach_environment", lambda _env: None)
    said: list[str] = []
    api.sandbox_start(str(tmp_path), echo=said.append)
    assert said[0].startswith("[sandbox] The previous sandbox world is gone (its server stopped or died): its "
                              "2 instance(s) i-0aaaaaaaaaaaaaaa1, i-0aaaaaaaaaaaaaaa2 no longer exist")
