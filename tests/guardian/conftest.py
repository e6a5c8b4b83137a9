"""Guardian tests: one sandbox for the folder, on-demand and spot instances."""

from __future__ import annotations

import pytest
from sandbox_env import fresh_instance


@pytest.fixture()
def instance(ctx):
    """A fresh running on-demand t3.micro, terminated afterwards."""
    with fresh_instance(ctx, "gtest") as iid:
        yield iid


@pytest.fixture()
def spot_instance(ctx):
    """A fresh running one-time spot t3.micro, terminated afterwards."""
    with fresh_instance(ctx, "gtest", spot=True) as iid:
        yield iid
