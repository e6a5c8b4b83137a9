"""``storage list|prune``: what runctl keeps in S3, what it costs per month, and deleting old code bundles.

Under ``s3://BUCKET/runctl/``: ``<project>/code/bundle-*.tar.gz`` (one per sync that changed something),
``<project>/checkpoints/<run-id>/…`` (checkpoint copies), ``_evidence/<instance>.json`` (what ``stop``
found, for a later ``terminate``), ``<project>/fleet-ends/<run-id>/node-N-WHY`` (a few bytes each: which
node of a fleet run ended it, as its guardian said), and multipart uploads that were begun and never finished (their
parts bill, though no listing of objects shows them).

Prune deletes code bundles only, never checkpoint copies or evidence. A bundle holds only the files that
changed and is applied by the ``train`` that uploaded it (the instance keeps the files and a manifest of
file hashes, which names no bundle), so an old bundle is needed by nobody; the newest ``--keep`` per
project stay, and so does every bundle younger than its presigned URL (an hour): a ``train`` may still
be fetching it. Multipart uploads begun more than a day ago are aborted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .aws import s3, s3_storage
from .aws.s3_storage import OpenUpload, StoredObject
from .aws.session import Context

GIB = 1024 ** 3
KINDS = ("code bundles", "checkpoints", "evidence", "fleet run ends", "multipart uploads", "other")
_BUNDLE = re.compile(r"^bundle-[0-9a-f]+\.tar\.gz$")
BUNDLE_IN_USE = timedelta(seconds=s3.URL_TTL_S)  # a train's presigned GET may still fetch it
UPLOAD_STALE = timedelta(days=s3_storage.ABORT_AFTER_DAYS)
DEFAULT_KEEP = 2


@dataclass(frozen=True)
class Where:
    project: str
    kind: str
    run_id: str = ""


def classify(key: str) -> Where:
    """Which project and kind a key under ``runctl/`` belongs to."""
    parts = key[len(s3_storage.PREFIX):].split("/")
    if parts[0] == "_evidence":
        return Where("-", "evidence")
    if len(parts) >= 3 and parts[1] == "code":
        return Where(parts[0], "code bundles")
    if len(parts) >= 3 and parts[1] == "checkpoints":
        return Where(parts[0], "checkpoints", parts[2] if len(parts) >= 4 else "")
    if len(parts) >= 4 and parts[1] == "fleet-ends":
        return Where(parts[0], "fleet run ends", parts[2])
    return Where(parts[0] if len(parts) > 1 else "-", "other")


def is_bundle(key: str) -> bool:
    where = classify(key)
    return where.kind == "code bundles" and bool(_BUNDLE.match(key.rsplit("/", 1)[-1]))


# --- formatting ------------------------------------------------------------------------------------

def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def usd_month(value: float | None) -> str:
    if value is None or value != value:
        return "$? (no price for the bucket's region)"
    if 0 < value < 0.005:
        return "<$0.01/month"
    return f"${value:,.2f}/month"


def usd_cell(value: float) -> str:
    """A $/month cell: cents, or "<$0.01" for the fractions of a cent small projects cost."""
    if value != value:
        return "unknown"
    return "<$0.01" if 0 < value < 0.005 else f"${value:,.2f}"


def text_formatters(df: Any) -> dict[str, Any]:
    """How a shell shows the storage tables' money and dates (the frame keeps the numbers)."""
    out: dict[str, Any] = {}
    if "usd_per_month" in df.columns:
        out["usd_per_month"] = usd_cell
    if "newest" in df.columns:
        out["newest"] = lambda t: f"{t:%Y-%m-%d %H:%M}"
    return out


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


# --- gathering -------------------------------------------------------------------------------------

@dataclass
class Usage:
    bucket: str
    region: str
    gb_month: float | None      # S3 Standard list price for the bucket's region
    price_date: str
    objects: list[StoredObject]
    uploads: list[OpenUpload]
    lifecycle: str

    def usd(self, size: int) -> float:
        return float("nan") if self.gb_month is None else size / GIB * self.gb_month

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects) + sum(u.size for u in self.uploads)


def gather(ctx: Context, bucket: str | None = None, project: str | None = None, *, uploads: bool = True) -> Usage:
    from .costs import load_snapshot

    name = s3.bucket_for(ctx, bucket)
    lifecycle = s3_storage.ensure_lifecycle(ctx, name)
    prefix = f"{s3_storage.PREFIX}{project}/" if project else s3_storage.PREFIX
    objects = s3_storage.list_stored(ctx, name, prefix)
    open_uploads = s3_storage.list_open_uploads(ctx, name, prefix) if uploads else []
    region = s3.bucket_region(ctx, name)
    snap = load_snapshot()
    return Usage(name, region, snap.s3_price(region), snap.date, objects, open_uploads, lifecycle)


def _price_note(u: Usage) -> str:
    if u.gb_month is None:
        return f"no S3 price for {u.region} in the price snapshot of {u.price_date}"
    return f"S3 Standard ${u.gb_month}/GB-month in {u.region}, price snapshot of {u.price_date}"


def lifecycle_line(u: Usage) -> str:
    return f"lifecycle rule (abort incomplete multipart uploads after {s3_storage.ABORT_AFTER_DAYS} day): {u.lifecycle}"


# --- storage list ----------------------------------------------------------------------------------

def list_frame(ctx: Context, project: str | None = None, bucket: str | None = None, prefix: str = "runctl"):
    """runctl's S3 usage per project and kind (checkpoint copies per run): objects, bytes, $/month."""
    import pandas as pd

    u = gather(ctx, bucket, project)
    groups: dict[Where, dict[str, Any]] = {}

    def add(where: Where, size: int, when: datetime) -> None:
        g = groups.setdefault(where, {"objects": 0, "bytes": 0, "newest": when})
        g["objects"] += 1
        g["bytes"] += size
        g["newest"] = max(g["newest"], when)

    for obj in u.objects:
        add(classify(obj.key), obj.size, obj.last_modified)
    for up in u.uploads:
        add(Where(classify(up.key).project, "multipart uploads"), up.size, up.initiated)
    rows = [{"project": w.project, "kind": w.kind, "run_id": w.run_id, "objects": g["objects"],
             "bytes": g["bytes"], "size": human_bytes(g["bytes"]), "usd_per_month": u.usd(g["bytes"]),
             "newest": pd.Timestamp(g["newest"])}
            for w, g in sorted(groups.items(), key=lambda item: (item[0].project == "-", item[0].project,
                                                                   KINDS.index(item[0].kind), item[0].run_id))]
    df = pd.DataFrame(rows, columns=["project", "kind", "run_id", "objects", "bytes", "size", "usd_per_month",
                                     "newest"])
    df = df.astype({"objects": "int64", "bytes": "int64", "usd_per_month": "float64"})
    where = f"s3://{u.bucket}/{s3_storage.PREFIX}{project + '/' if project else ''}"
    footer = [
        f"Total: {len(u.objects)} object(s), {len(u.uploads)} open multipart upload(s), {human_bytes(u.bytes)}, "
        f"{usd_month(u.usd(u.bytes))} ({_price_note(u)})",
        f"[{ctx.world().label()}] {where} · {lifecycle_line(u)}",
    ]
    if any(is_bundle(o.key) for o in u.objects) or u.uploads:
        footer.append(f"Delete old code bundles and stale uploads: {prefix} storage prune"
                      + (f" --project {project}" if project else ""))
    df.attrs.update(runctl_kind="storage", runctl_caption=f"runctl's S3 storage ({ctx.world().label()})",
                    runctl_footer=footer, runctl_total_bytes=u.bytes, runctl_total_usd_per_month=u.usd(u.bytes),
                    runctl_lifecycle=u.lifecycle)
    return df


def summary_line(ctx: Context) -> str | None:
    """One line for ``resources summary``: the bucket's runctl/ storage (None without a bucket)."""
    name = s3.bucket_for(ctx, None, required=False)
    if name is None:
        return None
    u = gather(ctx, name)
    return (f"S3 storage in s3://{name}/{s3_storage.PREFIX}: {len(u.objects)} object(s)"
            + (f" + {len(u.uploads)} open multipart upload(s)" if u.uploads else "")
            + f", {human_bytes(u.bytes)} ({u.bytes:,} bytes), {usd_month(u.usd(u.bytes))}")


# --- storage prune ---------------------------------------------------------------------------------

@dataclass
class PrunePlan:
    usage: Usage
    bundles: list[StoredObject]   # to delete
    uploads: list[OpenUpload]     # to abort
    kept_young: int               # beyond --keep, kept because a train may still fetch them

    @property
    def bytes(self) -> int:
        return sum(b.size for b in self.bundles) + sum(u.size for u in self.uploads)


def plan_prune(ctx: Context, project: str | None = None, keep: int = DEFAULT_KEEP,
               bucket: str | None = None) -> PrunePlan:
    u = gather(ctx, bucket, project)
    now = ctx.now()
    by_project: dict[str, list[StoredObject]] = {}
    for obj in u.objects:
        if is_bundle(obj.key):
            by_project.setdefault(classify(obj.key).project, []).append(obj)
    doomed: list[StoredObject] = []
    young = 0
    for bundles in by_project.values():
        bundles.sort(key=lambda o: (o.last_modified, o.key), reverse=True)
        for obj in bundles[keep:]:
            if now - obj.last_modified < BUNDLE_IN_USE:
                young += 1
            else:
                doomed.append(obj)
    stale = [up for up in u.uploads if now - up.initiated > UPLOAD_STALE]
    return PrunePlan(u, sorted(doomed, key=lambda o: o.key), stale, young)


def prune(ctx: Context, project: str | None = None, keep: int = DEFAULT_KEEP, *, yes: bool = False,
          bucket: str | None = None, prefix: str = "runctl", echo=lambda _line: None):
    """Delete old code bundles and abort stale multipart uploads (``yes``), or say what that would do."""
    import pandas as pd

    plan = plan_prune(ctx, project, keep, bucket)
    u, now = plan.usage, ctx.now()
    verb_b, verb_u = ("deleted", "aborted") if yes else ("would delete", "would abort")
    rows = [{"action": verb_b, "project": classify(o.key).project, "kind": "code bundle", "key": o.key,
             "bytes": o.size, "size": human_bytes(o.size), "age": _age(now, o.last_modified),
             "usd_per_month": u.usd(o.size)} for o in plan.bundles]
    rows += [{"action": verb_u, "project": classify(up.key).project, "kind": "multipart upload", "key": up.key,
              "bytes": up.size, "size": human_bytes(up.size), "age": _age(now, up.initiated),
              "usd_per_month": u.usd(up.size)} for up in plan.uploads]
    df = pd.DataFrame(rows, columns=["action", "project", "kind", "key", "bytes", "size", "age", "usd_per_month"])
    df = df.astype({"bytes": "int64", "usd_per_month": "float64"})
    counts = f"{len(plan.bundles)} old code bundle(s) and {len(plan.uploads)} stale multipart upload(s)"
    saving = f"{human_bytes(plan.bytes)}, {usd_month(u.usd(plan.bytes))}"
    world = ctx.world().label()
    if yes:
        s3_storage.delete_keys(ctx, u.bucket, [o.key for o in plan.bundles])
        s3_storage.abort_uploads(ctx, u.bucket, plan.uploads)
        head = f"[{world}] Deleted {counts} from s3://{u.bucket}/: saved {saving}." if len(df) else \
            f"[{world}] Nothing to prune in s3://{u.bucket}/{s3_storage.PREFIX}."
        echo(head)
    elif len(df):
        again = f"{prefix} storage prune" + (f" --project {project}" if project else "") + \
            (f" --keep {keep}" if keep != DEFAULT_KEEP else "") + " --yes"
        head = f"Dry run: nothing was deleted. Pruning would remove {counts}, saving {saving}. To do it: {again}"
    else:
        head = f"Nothing to prune in s3://{u.bucket}/{s3_storage.PREFIX} (dry run: nothing was deleted)."
    footer = [head, f"Kept: the newest {keep} code bundle(s) per project"
              + (f", {plan.kept_young} bundle(s) under an hour old (a train may still fetch them)"
                 if plan.kept_young else "")
              + ", every checkpoint copy and all evidence.",
              f"[{world}] {lifecycle_line(u)}"]
    df.attrs.update(runctl_kind="storage-prune", runctl_caption=f"storage prune ({world})", runctl_footer=footer,
                    runctl_saved_bytes=plan.bytes if yes else 0, runctl_dry_run=not yes)
    return df
