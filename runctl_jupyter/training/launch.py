"""Starting a run: claim → sync → launch.

Round trips on a warm instance: one read-only SSM command (the remote manifest + who holds the
claim), then one that takes the claim first, applies the code bundle and launches. A ``train``
that loses the claim changes nothing on the instance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..aws import s3, ssm
from ..aws.session import Context
from ..errors import BackendError, GuardRefused, Step, UsageError, cmd
from ..models import shown_name
from ..remote.replies import LaunchReply
from .runs import Echo, Launch, _quiet, first_line, new_run_id, project_name, running_instance, tag_run

# the launch command's limit on the instance and runctl's wait for it, the same (setup: sync, pip install)
LAUNCH_TIMEOUT_S = 1800


def _already_running(instance_id: str, holder_pid: str) -> GuardRefused:
    return GuardRefused(
        f"Training already running on instance {instance_id} (PID: {holder_pid}).",
        [cmd(f"aws monitor {instance_id}", "Wait for current training to complete"),
         cmd(f"aws stop {instance_id}", "Stop current training gracefully"),
         cmd(f"aws monitor {instance_id} --follow", "Check training status")],
    )


def local_script(script: str | Path, project_root_dir: str | Path | None, sync_code: bool) -> tuple[Path, Path, str]:
    """The checks made on this machine before anything is sent: (the script, the project root, the
    script's path inside it)."""
    script_path = Path(script).expanduser()
    if not script_path.is_file():
        raise UsageError(f"Training script not found: {script}",
                         [Step("Check the path (it is relative to the current folder: the notebook's, in Jupyter)"),
                          Step(f"Current folder: {Path.cwd()}")])
    from ..sync import check_sync_root, check_syntax, project_root

    if project_root_dir is not None:
        root = Path(project_root_dir).expanduser().resolve()
        if not root.is_dir() or root not in (script_path.resolve(), *script_path.resolve().parents):
            raise UsageError(f"--project-root {project_root_dir} is not a folder holding {script}.",
                             [Step("Give the folder the script is in, or one above it")])
    else:
        root = project_root(script_path.resolve())
    if sync_code:
        check_sync_root(root, explicit=project_root_dir is not None)
    check_syntax(script_path)
    return script_path, root, script_path.resolve().relative_to(root).as_posix()


def start_training(ctx: Context, instance_id: str, script: str | Path, script_args: Sequence[str] = (), *,
                   project: str | None = None, sync_code: bool = True, bucket: str | None = None,
                   resume: str | None = None, echo: Echo = _quiet, guardian_request: Any = None,
                   project_root_dir: str | Path | None = None, python: str | None = None,
                   torchrun: str | None = None, run_id: str | None = None,
                   extra_env: dict[str, str] | None = None) -> Launch:
    """Start ``script`` on the instance; ``guardian_request`` (guardian.Request) adds autostop/budget caps.
    ``python``: the interpreter (else the `python` setting, else launch.sh detects the image's);
    ``torchrun``: processes per node (a number or ``gpu``) to run it under torchrun. A fleet passes its
    ``run_id`` (one for every node) and ``extra_env`` (the code bundle it synced once, the rendezvous
    variables)."""
    script_path, root, rel_script = local_script(script, project_root_dir, sync_code)
    inst = running_instance(ctx, instance_id, "start training")
    name = project_name(ctx, script_path.resolve(), project, inst.project)
    world = ctx.world().label()
    env = ssm.remote_root_env(ctx)

    launch_env = dict(env)
    python = python or ctx.settings.python
    if python:  # also the interpreter sync_apply.sh builds the project venv from
        launch_env["RUNCTL_PYTHON"] = python
    if torchrun:
        launch_env["RUNCTL_TORCHRUN"] = torchrun
    synced: dict[str, str] = {}
    applied: dict[str, str] | None = None
    if sync_code:
        # Round trip 1 (read-only): which code does the instance hold?
        bundle_env, synced, applied = _prepare_sync(ctx, instance_id, root, name, env, bucket, echo)
        if bundle_env:
            launch_env.update(bundle_env)
    launch_env.update(extra_env or {})
    run_id = run_id or new_run_id(ctx)
    launch_env["RUNCTL_META_JSON"] = json.dumps(
        {"run_id": run_id, "script": rel_script, "args": list(script_args), "project": name,
         "started": ctx.now().isoformat(timespec="seconds"), "world": world})
    if resume:
        launch_env["RUNCTL_RESUME_FROM"] = resume
    from .. import guardian  # hook: guardian env/scripts, `--resume auto` fetch from S3 (guardian.py)

    guardian.before_launch(ctx, instance_id, name, run_id, resume, launch_env, echo,
                           request=guardian_request)

    # Round trip 2: claim first, then sync, then launch. One timeout for both sides: SSM ends the
    # command (setup included: sync, pip install) when runctl stops waiting for it, never later.
    result = ssm.run(ctx, instance_id, "launch", [name, run_id, rel_script, *script_args], launch_env,
                     timeout_s=LAUNCH_TIMEOUT_S)
    if result.status == "TimedOut":
        raise BackendError(
            f"The setup of run {run_id} on {instance_id} (claim, code sync, pip install) did not finish within "
            f"{LAUNCH_TIMEOUT_S // 60} min, so SSM ended it and the training did not start.",
            [cmd(f"aws monitor {instance_id} --run {run_id}", "Look at where the setup stopped"),
             Step("Install large requirements once (e.g. an image that has them), then train again")])
    reply = LaunchReply.parse(result.stdout, result.exit_code)
    if reply.refused == "running":
        raise _already_running(instance_id, reply.holder_pid)
    if reply.sync_failed:
        raise BackendError(f"Code sync to {instance_id} failed, so training was not started: "
                           f"{first_line(result.stderr)}", _sync_failure_steps(reply.sync_cause))
    if reply.refused == "no_code":
        raise GuardRefused(f"The project '{name}' has never been synced to {instance_id}, so there is nothing to run.",
                           [cmd(f"aws train {instance_id} {script} --sync-code", "Sync it (drop --no-sync-code)")])
    if reply.refused == "no_script":
        raise GuardRefused(f"{rel_script} is not in the code on {instance_id} (it was started with --no-sync-code).",
                           [cmd(f"aws train {instance_id} {script} --sync-code", "Sync the project first")])
    if reply.refused in ("no_gpu", "no_torch"):
        raise _torchrun_refusal(reply, instance_id, inst.instance_type, script)
    if not reply.started:
        raise BackendError(
            f"Training did not start on {instance_id}: {first_line(result.stderr) or result.status}",
            [cmd(f"aws monitor {instance_id}", "Look at the instance's last log"),
             Step("Check the script path is inside the project folder that is synced")])
    if applied is not None:
        _manifest_cache(ctx).put(instance_id, name, applied)
    tag_run(ctx, instance_id, run_id, "running", project=name)
    launch = Launch(instance_id, name, run_id, reply.pid, reply.log, synced, reply.python_text)
    torchrun_text = f", torchrun × {reply.nproc}" if reply.nproc else ""
    pieces = [f"[{world}] Started run {run_id} on {instance_id} (PID {launch.pid}, project {name}{torchrun_text})"]
    if launch.python:
        pieces.append(f"python {launch.python}")
    if synced:
        pieces.append(f"code synced: {synced.get('uploaded', '0')} file(s) sent, {synced.get('deleted', '0')} deleted")
    echo("; ".join(pieces))
    say_kept(instance_id, reply.kept, echo)
    if reply.torch_warning:
        echo(f"Warning: requirements.txt names {reply.torch_warning.replace(',', ', ')}, but "
             f"{reply.python_base or 'the interpreter'} already has torch: pip may install another build over "
             "the image's (multi-GB, maybe without the image's CUDA). Leave torch out of requirements.txt to use "
             "the image's.")
    return launch


def _torchrun_refusal(reply: LaunchReply, instance_id: str, instance_type: str, script: str | Path) -> UsageError:
    if reply.refused == "no_gpu":
        return UsageError(
            f"--nproc-per-node gpu: {instance_id} ({instance_type}) shows no NVIDIA GPU, so there is no count "
            "to start torchrun with.",
            [cmd(f"aws train {instance_id} {script} --torchrun --nproc-per-node 2", "Give the number of processes"),
             Step("Or use a GPU type with a Deep Learning AMI (its NVIDIA driver brings nvidia-smi)")])
    return UsageError(
        f"--torchrun needs PyTorch, and {reply.python or 'the interpreter'} on {instance_id} has no torch.",
        [Step("Use a Deep Learning AMI (its PyTorch environment is found by itself), or pass --python PATH"),
         Step("Or add torch to requirements.txt")])


def _sync_failure_steps(cause: str | None) -> list[Step]:
    """Steps for the cause sync_apply.sh reported (``sync_cause=``), not one guess for every failure."""
    if cause == "unsafe_bundle":
        return [Step("A folder under runctl/<project>/code on the instance is a link leading outside it, or the "
                     "bundle was damaged on the way: runctl never writes through such a link"),
                Step("Remove that link on the instance (or train with another --project), then train again")]
    if cause == "download":
        return [Step("Check the bucket is reachable from the instance (outbound HTTPS)"),
                Step("Run the command again, or use --no-sync-code")]
    if cause == "requirements":
        return [Step("Fix requirements.txt (the pip output is in the message above and in the run's sync log)"),
                Step("Run the command again")]
    return [Step("Run the command again"), Step("Or use --no-sync-code to run the code already on the instance")]


def _names(rels: list[str]) -> str:
    return ", ".join(shown_name(r) for r in rels[:5]) + (f" (+{len(rels) - 5} more)" if len(rels) > 5 else "")


def say_kept(instance_id: str, kept: list[str], echo: Echo) -> None:
    if kept:
        echo(f"Kept {len(kept)} file(s) on {instance_id} that changed there since runctl synced them, although "
             f"they are gone locally: {_names(kept)} (no longer synced)")


def _manifest_cache(ctx: Context):
    from ..sync import ManifestCache

    return ManifestCache(ctx.cache_dir / "manifests.json")


def _prepare_sync(ctx: Context, instance_id: str, root: Path, project: str, env: dict[str, str],
                  bucket: str | None, echo: Echo) -> tuple[dict[str, str], dict[str, str], dict[str, str] | None]:
    """Plan against the instance's manifest; upload one bundle with only what changed.

    Returns the launch environment for the bundle (empty when nothing changed), a summary, and the
    manifest the instance will hold once the bundle is applied.
    """
    from .. import sync

    def fetch(known: str, offset: int) -> str:
        result = ssm.run(ctx, instance_id, "sync_manifest", [project, known, str(offset)], env)
        if result.exit_code != 0:
            raise BackendError(f"Could not read the code manifest on {instance_id}: {first_line(result.stderr)}",
                               [cmd(f"aws status {instance_id}", "Check the instance")])
        return result.stdout

    excluded: dict[str, str] = {}
    local = sync.collect_files(root, excluded)
    _say_excluded(excluded, echo)
    drifted: list[str] = []
    gone: set[str] = set()
    remote_manifest = sync.read_remote_manifest(fetch, _manifest_cache(ctx).get(instance_id, project),
                                                drifted=drifted, missing=gone)
    resend = [rel for rel in drifted if rel in local]
    if resend:
        echo(f"Code sync: {len(resend)} file(s) on {instance_id} differ from what runctl last sent (changed "
             f"there, or gone): {_names(resend)}; sending the local version again")
    say_kept(instance_id, [rel for rel in drifted if rel not in local and rel not in gone], echo)
    plan = sync.plan(local, remote_manifest)
    _refuse_oversized(ctx, root, plan, local)
    if plan.empty:
        return {}, {"uploaded": "0", "deleted": "0", "unchanged": str(plan.unchanged)}, None
    env, where = send_bundle(ctx, root, plan, local, project, bucket)
    echo(f"Code sync: {len(plan.upload)} changed file(s), {len(plan.delete)} deletion(s), {where}")
    return env, {"uploaded": str(len(plan.upload)), "deleted": str(len(plan.delete))}, plan.manifest


def send_bundle(ctx: Context, root: Path, plan: Any, local: dict[str, Any], project: str,
                bucket: str | None) -> tuple[dict[str, str], str]:
    """Upload the plan's code bundle to S3 once: (the launch environment that fetches and checks it,
    ``N bytes via s3://…`` as the sync line says it)."""
    from .. import sync

    bundle = sync.make_bundle(root, plan, local)
    name = s3.bucket_for(ctx, bucket)
    digest = sync.sha256_bytes(bundle)
    key = f"runctl/{project}/code/bundle-{digest[:16]}.tar.gz"
    s3.put_bytes(ctx, name, key, bundle)
    return ({"RUNCTL_SYNC_URL": s3.presign_get(ctx, name, key), "RUNCTL_SYNC_SHA256": digest},
            f"{len(bundle):,} bytes via s3://{name}/{key}")


def _say_excluded(excluded: dict[str, str], echo: Echo) -> None:
    """Once per sync: what was left out although it is in the project, and why (secrets first)."""
    if not excluded:
        return
    by_reason: dict[str, list[str]] = {}
    for rel, why in excluded.items():
        by_reason.setdefault(why, []).append(rel)
    parts = [f"{', '.join(shown_name(r) for r in sorted(rels)[:4])}"
             f"{f' (+{len(rels) - 4})' if len(rels) > 4 else ''}: {why}"
             for why, rels in sorted(by_reason.items(), key=lambda item: "cache" in item[0])]
    echo("Code sync left out " + "; ".join(parts))


def _refuse_oversized(ctx: Context, root: Path, plan: Any, local: dict[str, Any]) -> None:
    limit = ctx.settings.sync_max_mb * 1_000_000
    total = sum(local[rel].size for rel in plan.upload)
    if total <= limit:
        return
    largest = sorted(plan.upload, key=lambda rel: local[rel].size, reverse=True)[:5]
    raise UsageError(
        f"The code to sync from {root} is {total / 1e6:,.0f} MB, more than sync_max_mb "
        f"({ctx.settings.sync_max_mb:,.0f} MB).",
        [Step("Largest files: " + ", ".join(f"{rel} ({local[rel].size / 1e6:,.1f} MB)" for rel in largest)),
         Step(f"Leave data and outputs out: add them to {root / '.runctlignore'} (gitignore syntax), and "
              "read data on the instance from S3"),
         cmd(f"config set sync_max_mb {int(total / 1e6) + 1}", "Or raise the limit")])
