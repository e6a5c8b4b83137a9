"""AWS wire protocols: who a request is for, and protocol-correct error responses.

A request's service and region come from its SigV4 credential scope (header or presigned query).
Bodies are read only for the query/JSON actions the sandbox may intercept, and always put back so
moto can read them again.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
# Services whose calls the sandbox may answer itself (their bodies are read).
_BODY_SERVICES = {"ec2", "ssm", "pricing"}
_JSON_CT = "application/x-amz-json-1.1"


@dataclass
class AwsRequest:
    method: str
    path: str
    service: str | None
    region: str
    signed: bool  # SigV4 Authorization header (presigned URLs are not "signed calls" here)
    target: str | None = None
    action: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # query protocol parameters
    body: dict[str, Any] = field(default_factory=dict)  # JSON protocol body

    def param_list(self, prefix: str) -> list[str]:
        """``InstanceId.1``, ``InstanceId.2``… → values in order."""
        values = []
        index = 1
        while f"{prefix}.{index}" in self.params:
            values.append(self.params[f"{prefix}.{index}"])
            index += 1
        return values


def _scope(credential: str) -> tuple[str | None, str | None]:
    parts = credential.split("/")
    if len(parts) >= 5:
        return parts[-2].lower(), parts[-3]
    return None, None


def parse_request(environ: dict[str, Any]) -> AwsRequest:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    service = region = None
    if auth.startswith("AWS4-HMAC-SHA256") and "Credential=" in auth:
        service, region = _scope(auth.split("Credential=", 1)[1].split(",", 1)[0].strip())
    elif "X-Amz-Credential" in environ.get("QUERY_STRING", ""):
        credential = parse_qs(environ["QUERY_STRING"]).get("X-Amz-Credential", [""])[0]
        service, region = _scope(credential)
    target = environ.get("HTTP_X_AMZ_TARGET")
    req = AwsRequest(method=environ.get("REQUEST_METHOD", "GET"), path=environ.get("PATH_INFO", "/"),
                     service=service, region=region or "us-east-1", signed=bool(auth), target=target)
    if service in _BODY_SERVICES:
        raw = _read_body(environ)
        if target:
            req.action = target.rsplit(".", 1)[-1]
            try:
                req.body = json.loads(raw or b"{}")
            except ValueError:
                req.body = {}
        else:
            req.params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            ctype = environ.get("CONTENT_TYPE", "")
            if raw and ctype.startswith("application/x-www-form-urlencoded"):
                req.params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            req.action = req.params.get("Action")
    return req


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    return raw


def request_id() -> str:
    return str(uuid.uuid4())


# --- responses -----------------------------------------------------------------------------------

def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, default=str), status=status, content_type=_JSON_CT,
                    headers={"x-amzn-RequestId": request_id()})


def json_error(code: str, message: str, status: int = 400) -> Response:
    return Response(json.dumps({"__type": code, "message": message}), status=status,
                    content_type=_JSON_CT, headers={"x-amzn-RequestId": request_id(), "x-amzn-ErrorType": code})


def ec2_xml(action: str, inner: str) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_NS}">'
            f"<requestId>{request_id()}</requestId>{inner}</{action}Response>")
    return Response(body, status=200, content_type="text/xml")


def ec2_error(code: str, message: str, status: int = 400) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{request_id()}</RequestID>"
            "</Response>")
    return Response(body, status=status, content_type="text/xml")


def s3_error(code: str, message: str, status: int) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{request_id()}</RequestId></Error>")
    return Response(body, status=status, content_type="application/xml")


def query_error(code: str, message: str, status: int) -> Response:
    """awsQuery services (STS, IAM…)."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id()}</RequestId></ErrorResponse>")
    return Response(body, status=status, content_type="text/xml")


def fault_response(req: AwsRequest, kind: str) -> Response:
    """The error a real service returns when it throttles (``throttle``) or fails (``drop``)."""
    throttle = kind == "throttle"
    if req.service == "ec2":
        if throttle:
            return ec2_error("RequestLimitExceeded", "Request limit exceeded.", 503)
        return ec2_error("InternalError", "An internal error has occurred (sandbox fault injection).", 500)
    if req.service == "s3":
        if throttle:
            return s3_error("SlowDown", "Please reduce your request rate.", 503)
        return s3_error("InternalError", "We encountered an internal error. Please try again.", 500)
    if req.target:
        if throttle:
            return json_error("ThrottlingException", "Rate exceeded", 400)
        return json_error("InternalServerError", "Internal failure (sandbox fault injection).", 500)
    if throttle:
        return query_error("Throttling", "Rate exceeded", 400)
    return query_error("InternalFailure", "Internal failure (sandbox fault injection).", 500)


class RawResponse:
    """A moto response kept byte-exact (headers included: HEAD's Content-Length must survive)."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def get_data(self, as_text: bool = False) -> Any:
        return self.body.decode("utf-8") if as_text else self.body

    def set_data(self, data: str | bytes) -> None:
        self.body = data.encode("utf-8") if isinstance(data, str) else data
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        self.headers.append(("Content-Length", str(len(self.body))))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(self.status, self.headers)
        return [self.body]


def drain(environ: dict[str, Any]) -> None:
    """Consume an unread request body, so a keep-alive connection stays in step."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    if environ.get("wsgi.input_terminated"):
        while stream.read(1 << 16):
            continue
        return
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 16))
        if not chunk:
            break
        remaining -= len(chunk)
