"""The sandbox's one WSGI app: control API, IMDS, the calls the sandbox answers, then moto.

Order per request: /_runctl/… (control) → /_imds/… (IMDSv2) → S3's own refusals (SigV2, s3_strict)
→ fault injection (signed calls only) → the region's public images made to exist (catalog.py, once per
region, before its first EC2/SSM call) → interceptors (SSM execution, Pricing, spot prices, fleets' placement
groups and addresses, EC2 lifecycle, S3 multipart upload listings) → moto, under the moto lock.

Where moto enforces IAM (a test switched it on: ``POST /moto-api/reset-auth``), it checks calls signed
in their Authorization header; a presigned S3 object URL (which has none, and which moto would fail
on) is checked here instead, against its signer's policies by moto's own evaluator; any other
request without credentials is refused.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from . import catalog, imds, moto_seams, pricing, s3_strict, spot
from .control_api import ControlApi
from .fleet_net import FleetNetwork
from .lifecycle import Lifecycle
from .protocol import (
    AwsRequest,
    RawResponse,
    drain,
    ec2_error,
    fault_response,
    json_error,
    parse_request,
    s3_error,
)
from .s3_uploads import MultipartUploads
from .ssm_api import SsmApi
from .world import World

log = logging.getLogger("runctl.sandbox")


class SandboxApp:
    def __init__(self, world: World, on_shutdown: Callable[[], None]) -> None:
        self.world = world
        self._moto: Any = None
        self.lifecycle = Lifecycle(world, self.forward)
        self.fleet_network = FleetNetwork(world, self.lifecycle.run_instances)
        self.ssm = SsmApi(world)
        self.s3_uploads = MultipartUploads(world)
        self.control = ControlApi(world, self.lifecycle, on_shutdown)
        self._public_images_in: set[str] = set()  # regions whose public images exist (catalog.py)

    def moto_app(self) -> Any:
        with self.world.moto_lock:
            if self._moto is None:
                self._moto = moto_seams.app()
            return self._moto

    def forward(self, environ: dict[str, Any]) -> RawResponse:
        """Run moto on this request under the moto lock and keep its whole response."""
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda data: captured.setdefault("written", []).append(data)

        with self.world.moto_lock:
            app = self.moto_app()
            unsigned = ("HTTP_AUTHORIZATION" not in environ and not environ.get("PATH_INFO", "").startswith("/moto-api/")
                        and moto_seams.iam_enforced())
            if unsigned:
                refusal = _presigned_refusal(environ)
                if refusal is not None:
                    drain(environ)
                    return refusal
            with moto_seams.iam_check_suspended() if unsigned else contextlib.nullcontext():
                result: Iterable[bytes] = app(_routable(environ), start_response)
                try:
                    body = b"".join(captured.get("written", [])) + b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
        return RawResponse(captured["status"], captured["headers"], body)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_runctl/"):
            return self.control.handle(environ)(environ, start_response)
        if path.startswith("/_imds/"):
            return imds.handle(self.world, environ)(environ, start_response)
        if _signed_v2(environ):  # as S3 answers for every bucket made since June 2020
            drain(environ)
            return s3_error("InvalidRequest", "The authorization mechanism you have provided is not supported. "
                            "Please use AWS4-HMAC-SHA256.", 400)(environ, start_response)
        req = parse_request(environ)
        if req.service == "s3":
            refusal = s3_strict.check(environ, self._bucket_region)
            if refusal is not None:
                return refusal(environ, start_response)
        if req.signed:
            decision = self.world.faults.decide(req.service)
            if decision.latency_s:
                time.sleep(decision.latency_s)
            if decision.kind:
                drain(environ)
                return fault_response(req, decision.kind)(environ, start_response)
        try:
            if req.service in ("ec2", "ssm") and req.region not in self._public_images_in:
                self._add_public_images(req.region)
            response = self._intercept(req, environ) or self.forward(environ)
        except Exception as exc:  # a sandbox bug: answer like AWS's 500 and log it, never hang
            print(f"runctl sandbox: {req.service} {req.action}: {exc!r}\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
            drain(environ)
            response = _internal_error(req, str(exc))
        return response(environ, start_response)

    def _add_public_images(self, region: str) -> None:
        """AWS's public images of the package's snapshot (the Deep Learning AMIs and their SSM
        parameters) made to exist in ``region`` before its first EC2 or SSM call is answered."""
        with self.world.moto_lock:
            if region in self._public_images_in:
                return
            self.moto_app()  # the backends exist once moto's app does
            moto_seams.add_public_images(region, catalog.public_images(region))
            self._public_images_in.add(region)

    def _bucket_region(self, name: str) -> str | None:
        with self.world.moto_lock:
            self.moto_app()  # the backends exist once moto's app does
            return moto_seams.bucket_region(name)

    def _intercept(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        if req.service == "ssm" and req.target:
            return self.ssm.handle(req)
        if req.service == "s3":
            return self.s3_uploads.handle(environ, self.forward)
        if req.service == "pricing":
            return pricing.get_products(req)
        if req.service == "ec2":
            if req.action == "DescribeSpotPriceHistory":
                return spot.describe_spot_price_history(self.world, req)
            return self.fleet_network.handle(req, environ) or self.lifecycle.handle(req, environ)
        return None

    def preload(self, regions: list[str]) -> None:
        def work() -> None:
            with self.world.moto_lock:
                self.moto_app()
                moto_seams.check_version()
                moto_seams.preload(regions)

        threading.Thread(target=work, daemon=True, name="moto-preload").start()


def _routable(environ: dict[str, Any]) -> dict[str, Any]:
    """A presigned call to a service other than S3 (the guardian's EC2 StopInstances, a fleet node's
    DescribeInstances of its peers) as moto can route it: moto finds the service in the Authorization
    header's credential scope and sends every request without one to S3 (it would answer ListBuckets),
    so the presigned URL's own credential scope is put there. AWS takes these calls as they are."""
    if "HTTP_AUTHORIZATION" in environ or "X-Amz-Credential" not in environ.get("QUERY_STRING", ""):
        return environ
    credential = parse_qs(environ["QUERY_STRING"]).get("X-Amz-Credential", [""])[0]
    if len(credential.split("/")) != 5 or credential.split("/")[3] == "s3":
        return environ
    return {**environ, "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, "
                                             "Signature=presigned"}


def _signed_v2(environ: dict[str, Any]) -> bool:
    """A SigV2 request: `Authorization: AWS KEY:SIG`, or a presigned URL with AWSAccessKeyId + Signature."""
    if environ.get("HTTP_AUTHORIZATION", "").startswith("AWS "):
        return True
    query = parse_qs(environ.get("QUERY_STRING", ""))
    return "Signature" in query and "AWSAccessKeyId" in query and "X-Amz-Algorithm" not in query


# The S3 object operations a presigned URL may perform: (method, query parameters besides X-Amz-*) → IAM action
_PRESIGNED_ACTIONS = {"GET": ("s3:GetObject", set()), "HEAD": ("s3:GetObject", set()),
                      "PUT": ("s3:PutObject", {"partNumber", "uploadId"})}


def _presigned_refusal(environ: dict[str, Any]) -> RawResponse | None:
    """Under IAM enforcement, for a request without an Authorization header: ``None`` if it is a SigV4
    presigned S3 object URL whose signer may perform its action on that object, else S3's AccessDenied
    (a presigned POST form, another service's presigned call, an anonymous request: none of them can
    be evaluated here, so none is let through)."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    scope = query.get("X-Amz-Credential", [""])[0].split("/")
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    action, extra = _PRESIGNED_ACTIONS.get(environ.get("REQUEST_METHOD", ""), ("", set()))
    others = {k for k in query if not k.lower().startswith("x-amz-") and not k.startswith("response-")}
    if len(scope) == 5 and scope[3] == "s3" and bucket and key and action and others <= extra:
        token = query.get("X-Amz-Security-Token", [None])[0]
        if moto_seams.iam_allows(scope[0], token, scope[2], action, f"arn:aws:s3:::{bucket}/{key}"):
            return None
    denied = s3_error("AccessDenied", "Access Denied", 403)
    return RawResponse(denied.status, list(denied.headers.items()), denied.get_data())


def _internal_error(req: AwsRequest, message: str) -> Any:
    if req.service == "ec2":
        return ec2_error("InternalError", message, 500)
    if req.target:
        return json_error("InternalServerError", message, 500)
    return s3_error("InternalError", message, 500)
