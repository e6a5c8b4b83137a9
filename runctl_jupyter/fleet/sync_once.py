"""A fleet's code sync: every node's manifest read with one command, one bundle planned against all of
them, one PUT to S3, one presigned GET that every node fetches (not N uploads).

The plan is made against a merged manifest: a file is left out of the bundle only when every node
already holds the local version; a deletion is listed when any node's manifest has a file that is
gone locally (sync_apply.sh deletes only what that node's own manifest lists). The one bundle is
therefore right for every node, whatever each held before.
"""

from __future__ import annotations

from pathlib import Path

from .. import sync
from ..aws import ssm
from ..aws.session import Context
from ..errors import BackendError, cmd
from ..training.launch import _manifest_cache, _names, _refuse_oversized, _say_excluded, say_kept, send_bundle
from ..training.runs import first_line
from .commands import run_all
from .members import Echo, Fleet


def merged_manifest(manifests: list[dict[str, str]]) -> dict[str, str]:
    """{relpath: sha256} where every node agrees; "" (send it again) where they differ or one lacks it."""
    keys = set().union(*manifests) if manifests else set()
    return {rel: (manifests[0].get(rel) or "") if all(m.get(rel) == manifests[0].get(rel) for m in manifests) else ""
            for rel in sorted(keys)}


def sync_once(ctx: Context, fleet: Fleet, root: Path, project: str, env: dict[str, str], bucket: str | None,
              echo: Echo) -> tuple[dict[str, str], dict[str, str], dict[str, str] | None]:
    """(the launch environment for the bundle, a summary, the manifest every node holds once applied)."""
    ids = fleet.instance_ids
    excluded: dict[str, str] = {}
    local = sync.collect_files(root, excluded)
    _say_excluded(excluded, echo)
    cache = _manifest_cache(ctx)
    cached = [cache.get(iid, project) for iid in ids]
    digests = {sync.manifest_sha256(c) if c is not None else "" for c in cached}
    shared = cached[0] if len(digests) == 1 else None  # every node was last given the same code here
    known = sync.manifest_sha256(shared) if shared is not None else ""
    first_pages = run_all(ctx, ids, "sync_manifest", [project, known, "0"], env)
    manifests = []
    for node, iid in enumerate(ids):
        prefetched = [first_pages[iid]]

        def fetch(digest: str, offset: int, iid: str = iid, node: int = node, prefetched: list = prefetched) -> str:
            if offset == 0 and digest == known and prefetched:
                result = prefetched.pop()
            else:  # a later page of a long manifest (or a restart): this node alone
                result = ssm.run(ctx, iid, "sync_manifest", [project, digest, str(offset)], env)
            if result.exit_code != 0:
                raise BackendError(f"Could not read the code manifest on node {node} ({iid}): "
                                   f"{first_line(result.stderr)}", [cmd(f"fleet status {fleet.name}", "Check the fleet")])
            return str(result.stdout)

        drifted: list[str] = []
        gone: set[str] = set()
        manifests.append(sync.read_remote_manifest(fetch, shared, drifted=drifted, missing=gone))
        resend = [rel for rel in drifted if rel in local]
        if resend:
            echo(f"Code sync: {len(resend)} file(s) on node {node} ({iid}) differ from what runctl last sent: "
                 f"{_names(resend)}; sending the local version again")
        say_kept(iid, [rel for rel in drifted if rel not in local and rel not in gone], echo)
    plan = sync.plan(local, merged_manifest(manifests))
    _refuse_oversized(ctx, root, plan, local)
    if plan.empty:
        echo(f"Code sync: every node of fleet {fleet.name} already holds the code ({plan.unchanged} file(s))")
        return {}, {"uploaded": "0", "deleted": "0", "unchanged": str(plan.unchanged)}, None
    bundle_env, where = send_bundle(ctx, root, plan, local, project, bucket)
    echo(f"Code sync: {len(plan.upload)} changed file(s), {len(plan.delete)} deletion(s), {where}, one bundle "
         f"fetched by all {len(ids)} nodes")
    return bundle_env, {"uploaded": str(len(plan.upload)), "deleted": str(len(plan.delete))}, plan.manifest
