"""One place that builds boto3 sessions and clients (lazily: importing runctl imports no boto3).

The world a :class:`Context` talks to is a value given when it is made: ``Context(settings)`` is AWS,
``Context(settings, sandbox=SandboxWorld(endpoint, folder))`` the embedded sandbox. No code here reads
the environment to learn which (``api.context`` decides, once, for the front ends); a context made
for AWS stays on AWS even when another cell later starts the sandbox. Retries use botocore's own
modes (standard/adaptive) with the configured attempt count instead of hand-written loops. Every API
call is counted through botocore's ``before-call`` event, so benchmarks and tests can assert on
call counts.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import CredentialsError, RunctlError, Step, UsageError, cmd, sandbox_step, translate_aws_errors
from ..models import World

# The variable the sandbox exports into an attached process (api.attach_environment) and into the
# commands its instances run; only api.context reads it.
SANDBOX_ENV = "RUNCTL_SANDBOX_ENDPOINT"


def env_region() -> str | None:
    """``AWS_REGION``, which the AWS CLI v2 and the AWS SDKs honour (before ``AWS_DEFAULT_REGION``)
    but botocore does not read."""
    return os.environ.get("AWS_REGION") or None


def user_cache_dir() -> Path:
    """Where this machine caches prices and code manifests for AWS: ~/.cache/runctl."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runctl"


_LOADERS: dict[str | None, Any] = {}  # data_path -> botocore's data loader (the models: read-only JSON)
_LOADERS_LOCK = threading.Lock()


def _boto3_session(profile_name: str | None, region_name: str | None) -> Any:
    """A new boto3 session whose data loader (the service models, endpoints, partitions: read-only
    JSON) is this process's one, so that a new context does not parse the models again: 0.2-0.3 s
    of CPU per context (each ``%runctl`` line, each panel refresh's context, each test) otherwise."""
    import boto3
    import botocore.loaders
    import botocore.session

    core = botocore.session.get_session()
    if profile_name is not None:
        core.set_config_variable("profile", profile_name)
    # what botocore reads to make its loader; reading it reads the profile's config (ProfileNotFound
    # here, before any call, as a session of boto3's own making raises it)
    data_path = core.get_config_variable("data_path")
    with _LOADERS_LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = botocore.loaders.create_loader(data_path)
        core.register_component("data_loader", loader)
        session = boto3.Session(botocore_session=core, profile_name=profile_name, region_name=region_name)
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))  # boto3 adds its folder each time
    return session


def sandbox_clock(endpoint: str) -> datetime:
    """The sandbox's current instant (it may be frozen): every date a user sees while the sandbox is
    in use comes from here, never the machine's clock."""
    with urllib.request.urlopen(f"{endpoint}/_runctl/clock", timeout=5) as resp:  # loopback only
        return datetime.fromisoformat(json.load(resp)["now"])


@dataclass(frozen=True)
class SandboxWorld:
    """The embedded sandbox a context talks to: its loopback endpoint and its folder."""

    endpoint: str
    folder: Path | None = None


@dataclass(frozen=True)
class Pacing:
    """How often this world is polled (seconds): the sandbox answers in milliseconds, AWS in seconds."""

    ssm_first_poll: float      # first wait for a SendCommand's result (then ×1.6, at most 2 s)
    log_poll: float            # between reads of a followed log
    run_poll: float            # between status reads while waiting for a run to exit
    state_poll: float          # between DescribeInstances / SSM registration polls
    waiter_delay: float        # boto3 waiter Delay (the sandbox: a few tenths, as its transitions take)
    waiter_max_s: int          # how long an instance state transition may take


SANDBOX_PACING = Pacing(ssm_first_poll=0.05, log_poll=0.3, run_poll=0.3, state_poll=0.25,
                        waiter_delay=0.2, waiter_max_s=30)
AWS_PACING = Pacing(ssm_first_poll=0.5, log_poll=2.0, run_poll=3.0, state_poll=5.0,
                    waiter_delay=5, waiter_max_s=600)


class Context:
    """Settings + a lazily-created boto3 session and cached clients, shared by one command."""

    def __init__(self, settings: Settings | None = None, *, sandbox: SandboxWorld | None = None,
                 cache_dir: Path | None = None, pacing: Pacing | None = None):
        self.settings = settings or Settings()
        self.sandbox = sandbox
        if cache_dir is None:  # per sandbox world (its folder), or the user's cache
            cache_dir = sandbox.folder / "client" if sandbox and sandbox.folder else user_cache_dir()
        self.cache_dir = cache_dir
        self.pacing = pacing or (SANDBOX_PACING if sandbox else AWS_PACING)
        self._session = None
        self._clients: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self._account: str | None = None
        self._region_checked = False
        self.calls: Counter[str] = Counter()

    # -- where we are ---------------------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        return self.sandbox is not None

    @property
    def world_key(self) -> str:
        """Names this context's world in per-process caches (no STS call just for that)."""
        return self.sandbox.endpoint if self.sandbox else "aws"

    @property
    def session(self):
        if self._session is None:
            from botocore.exceptions import ProfileNotFound  # lazy by design (so is boto3: _boto3_session)

            profile = None if self.is_sandbox else self.settings.profile
            try:
                with translate_aws_errors("open the AWS profile"):
                    self._session = _boto3_session(profile_name=profile,
                                                   region_name=self.settings.region or env_region())
            except ProfileNotFound as exc:
                source = ("env AWS_PROFILE" if profile is None else self.settings.sources.get("profile", "settings"))
                name = str(exc.kwargs.get("profile"))
                shown = name if len(name) <= 80 else name[:80] + f"… ({len(name):,} characters)"
                raise UsageError(
                    f"The AWS profile {shown!r} ({source}) is not in your AWS config.",
                    [Step("Check its name: `aws configure list-profiles`"),
                     Step("Or set AWS_PROFILE / pass --profile with an existing profile"),
                     cmd("config show", "See where runctl's settings come from"),
                     sandbox_step()]) from exc
        return self._session

    @property
    def region(self) -> str:
        region = self.settings.region or self.session.region_name  # the session got AWS_REGION
        if not region:
            raise CredentialsError(
                "No AWS region is set.",
                [cmd("config set region us-east-1", "Set a default region"),
                 Step("Or set AWS_REGION (or AWS_DEFAULT_REGION), or pass --region"),
                 sandbox_step()],
            )
        if not self._region_checked:
            self._check_region(region)
        return region

    def _check_region(self, region: str) -> None:
        """A misspelt region from settings or the environment fails here, with where it came from
        (a --region flag is checked when the command is parsed)."""
        from ..grammar import check_region

        try:
            check_region(region)
        except UsageError as exc:
            source = self.region_source()[1]
            raise UsageError(f"{exc.message.rstrip('.')} (the region from {source}).",
                             [*exc.steps, cmd("config show", "See where each setting comes from")]) from None
        self._region_checked = True

    def region_source(self) -> tuple[str | None, str]:
        """The region in effect and where it comes from, in the AWS CLI v2's order: runctl's own
        setting (flag, RUNCTL_REGION, config files) > AWS_REGION > AWS_DEFAULT_REGION > the profile's
        ``region`` in ~/.aws/config. botocore alone reads only the last two, hence ``env_region``."""
        if self.settings.region:
            return self.settings.region, self.settings.sources.get("region", "default")
        region = self.session.region_name  # AWS_REGION was handed to the session (see ``session``)
        if not region:
            return None, "not set"
        if self.is_sandbox:
            return region, "sandbox"
        if env_region() == region:
            return region, "env AWS_REGION"
        if os.environ.get("AWS_DEFAULT_REGION") == region:
            return region, "env AWS_DEFAULT_REGION"
        return region, "boto3: AWS config file"

    def explain(self) -> list[tuple[str, Any, str]]:
        """``config show``: every setting's *effective* value and where it comes from. Where runctl
        sets no region / profile / bucket / project, this says what is used instead (the sandbox's
        defaults, boto3's chain, the project folder's name) rather than "None (default)"."""
        effective = {
            "region": self._explain_region(),
            "profile": self._explain_profile(),
            "bucket": self._explain_bucket(),
            "project": self._explain_project(),
        }
        return [(name, *effective[name]) if name in effective and source == "default" else (name, value, source)
                for name, value, source in self.settings.explain()]

    def _explain_region(self) -> tuple[Any, str]:
        try:
            return self.region_source()
        except RunctlError as err:  # e.g. AWS_PROFILE names a missing profile: say so, do not fail
            return None, f"unknown: {err.message}"

    def _explain_profile(self) -> tuple[Any, str]:
        if self.is_sandbox:
            return None, "not used in the sandbox"
        if os.environ.get("AWS_PROFILE"):
            return os.environ["AWS_PROFILE"], "env AWS_PROFILE"
        return None, "boto3's chain: env credentials, then the default profile"

    def _explain_bucket(self) -> tuple[Any, str]:
        if self.is_sandbox:
            from .s3 import SANDBOX_BUCKET

            return SANDBOX_BUCKET, "sandbox default"
        return None, "not set; code sync and checkpoint copies need one"

    def _explain_project(self) -> tuple[Any, str]:
        from ..sync_scope import choose_project, project_root

        root = project_root(Path.cwd())
        return choose_project(None, None, None, root), f"name of the project folder {root}"

    def world(self) -> World:
        if self.is_sandbox:
            return World("sandbox", self.region)
        if self._account is None:
            with translate_aws_errors("identify the AWS account"):
                self._account = self.client("sts").get_caller_identity()["Account"]
        return World("aws", self.region, self._account)

    # -- clients ----------------------------------------------------------------------------
    def client(self, service: str, region: str | None = None, *, presign: bool = False):
        """A cached client; ``presign`` (S3): one that presigns SigV4 URLs for ``region``'s own
        endpoint (botocore presigns SigV2 on the global endpoint for us-east-1, us-west-2 and
        eu-west-1, which S3 refuses for buckets made since June 2020; curl follows no redirect)."""
        region = region or (self.region if service != "pricing" else _pricing_region(self.region))
        key = (service, region) if not presign else (service, region, "presign")
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from botocore.config import Config

                config = Config(
                    retries={"mode": self.settings.retry_mode, "max_attempts": self.settings.max_attempts},
                    user_agent_extra="runctl-jupyter",
                    connect_timeout=10,
                    read_timeout=60,
                    max_pool_connections=32,
                )
                if presign:  # the sandbox's loopback endpoint takes path-style URLs
                    config = config.merge(Config(signature_version="s3v4", s3={
                        "addressing_style": "path" if self.is_sandbox else "virtual",
                        "us_east_1_regional_endpoint": "regional"}))
                # The endpoint is pinned both ways: a sandbox context never reaches real AWS, and an
                # AWS context ignores an AWS_ENDPOINT_URL that a sandbox started later exported.
                endpoint = self.sandbox.endpoint if self.sandbox else None
                if endpoint is None:
                    config = config.merge(Config(ignore_configured_endpoint_urls=True))
                client = self.session.client(service, region_name=region, config=config, endpoint_url=endpoint)
                client.meta.events.register("before-call", self._count_call)
                self._clients[key] = client
        return client

    def _count_call(self, model=None, **_kwargs) -> None:
        if model is not None:
            self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def client_factory(self):
        """``(service, region) -> client``, for modules that take a factory."""
        return lambda service, region=None: self.client(service, region)

    # -- time -------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The current instant of this command's world: the sandbox clock there, else UTC now."""
        return sandbox_clock(self.sandbox.endpoint) if self.sandbox else datetime.now(UTC)


def _pricing_region(region: str) -> str:
    # The Pricing API lives in us-east-1 (and ap-south-1 / eu-central-1); prices of every region come from there.
    return "ap-south-1" if region.startswith("ap-") else "us-east-1"
