"""Per-instance IMDSv2 at /_imds/<iid>/latest/…  (the instance reaches it via $RUNCTL_IMDS_ENDPOINT).

PUT latest/api/token (X-aws-ec2-metadata-token-ttl-seconds) → token; every GET needs the header
X-aws-ec2-metadata-token (401 without / with an expired one), as on AMIs that refuse IMDSv1.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from . import moto_seams
from .clock import iso
from .world import World


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/plain")


def handle(world: World, environ: dict[str, Any]) -> Response:
    request = Request(environ)
    parts = request.path.split("/", 3)  # "", "_imds", iid, rest
    if len(parts) < 4:
        return _text("Not Found", 404)
    iid, rest = parts[2], parts[3]
    with world.moto_lock:
        inst = moto_seams.find_instance(iid)
        facts = moto_seams.describe(inst) if inst is not None else None
        role = moto_seams.iam_role_name(inst) if inst is not None else None
    if facts is None or facts["state"] not in ("running", "stopping", "shutting-down", "pending"):
        return _text("Not Found", 404)
    meta = world.meta_for(iid, facts["region"])
    if rest == "latest/api/token":
        if request.method != "PUT":
            return _text("Method Not Allowed", 405)
        try:
            ttl = int(request.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return _text("Bad Request", 400)
        if not 1 <= ttl <= 21600:
            return _text("Bad Request", 400)
        token = secrets.token_urlsafe(32)
        with world.meta_lock:
            meta.tokens[token] = time.monotonic() + ttl
        return Response(token, content_type="text/plain",
                        headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    token = request.headers.get("X-aws-ec2-metadata-token", "")
    with world.meta_lock:
        expiry = meta.tokens.get(token)
    if expiry is None or expiry < time.monotonic():
        return _text("Unauthorized", 401)
    if request.method != "GET":
        return _text("Method Not Allowed", 405)
    return _metadata(rest.removeprefix("latest/"), facts, role, meta.notice, world)


def _metadata(path: str, facts: dict[str, Any], role: str | None, notice: dict[str, str] | None,
              world: World) -> Response:
    path = path.rstrip("/") if path not in ("meta-data/", "meta-data/iam/security-credentials/") else path
    simple = {
        "meta-data/instance-id": facts["id"],
        "meta-data/instance-type": facts["type"],
        "meta-data/ami-id": facts["image_id"],
        "meta-data/placement/availability-zone": facts["az"],
        "meta-data/placement/region": facts["region"],
        "meta-data/instance-life-cycle": "spot" if facts["lifecycle"] == "spot" else "on-demand",
        "meta-data/local-ipv4": "127.0.0.1",
        "meta-data/hostname": f"{facts['id']}.sandbox.internal",
    }
    if path in ("meta-data", "meta-data/"):
        keys = sorted({k.split("/")[1] + ("/" if k.count("/") > 1 else "") for k in simple})
        return _text("\n".join(keys + ["iam/", "spot/"]))
    if path in simple:
        return _text(simple[path])
    if path == "meta-data/spot/instance-action":
        return _text(json.dumps(notice)) if notice else _text("Not Found", 404)
    if path == "meta-data/spot/termination-time":
        return _text(notice["time"]) if notice else _text("Not Found", 404)
    if path.startswith("meta-data/iam/security-credentials"):
        if role is None:
            return _text("Not Found", 404)
        tail = path.removeprefix("meta-data/iam/security-credentials").strip("/")
        if not tail:
            return _text(role)
        if tail != role:
            return _text("Not Found", 404)
        now = world.clock.now()
        return _text(json.dumps({"Code": "Success", "LastUpdated": iso(now), "Type": "AWS-HMAC",
                                 "AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "testing",
                                 "Expiration": iso(now.replace(year=now.year + 1))}))
    return _text("Not Found", 404)
