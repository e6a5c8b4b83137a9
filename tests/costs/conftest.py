"""Fixtures for the cost tests: a movable clock and Stubber-wrapped boto3 clients (never real AWS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from costs_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and no endpoint override: a stray real call would fail, never reach AWS."""
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[Any]:
    """``(factory, stubs)``: a client factory whose clients are Stubber-wrapped, one per (service, region)."""
    import boto3
    from botocore.stub import Stubber

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")
    clients: dict[tuple[str, str], Any] = {}
    stubs: dict[tuple[str, str], Stubber] = {}

    def stub(service: str, region: str) -> Stubber:
        key = (service, region)
        if key not in stubs:
            clients[key] = session.client(service, region_name=region)
            stubs[key] = Stubber(clients[key])
            stubs[key].activate()
        return stubs[key]

    def factory(service: str, region: str) -> Any:
        stub(service, region)
        return clients[(service, region)]

    yield factory, stub
    for s in stubs.values():
        s.deactivate()
