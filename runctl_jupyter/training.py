"""Training on an instance: start (claim → sync → launch), follow the log, stop safely, guard terminate.

Round trips on a warm instance: one read-only SSM command (the remote manifest + who holds the
claim), then one that takes the claim first, applies the code bundle and launches. A ``train``
that loses the claim changes nothing on the instance.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import guard, log_catchup, logs, remote
from .aws import ec2, s3, ssm
from .aws.session import Context
from .errors import BackendError, GuardRefused, SandboxNotRunning, Step, TrainingFailed, UsageError, cmd
from .guard import Listing, checkpoint_prefix
from .models import Instance, shown_name, validate_instance_id

Echo = Callable[[str], None]
LOG_TAIL_LINES = 20
# the launch command's limit on the instance and runctl's wait for it, the same (setup: sync, pip install)
LAUNCH_TIMEOUT_S = 1800


def _quiet(_line: str) -> None:
    """Say nothing."""


def _to_log(line: str) -> None:
    """Where a note goes when the caller gave no echo: the backend never prints (logging does)."""
    logging.getLogger("runctl").warning(line)


@dataclass
class Launch:
    instance_id: str
    project: str
    run_id: str
    pid: int
    log_path: str
    synced: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainResult:
    """The outcome of a run, as far as it is known when the call returns."""

    instance_id: str
    project: str
    run_id: str
    state: str                    # succeeded | failed | running | detached | stopped
    exit_code: int | None = None
    log_tail: str = ""

    def summary(self) -> str:
        code = "" if self.exit_code is None else f" (exit code {self.exit_code})"
        return f"Run {self.run_id} on {self.instance_id}: {self.state}{code}"

    to_shell_text = summary

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.summary())


def project_name(ctx: Context, script: Path, explicit: str | None, instance_project: str | None = None) -> str:
    """--project, else the configured project, else the instance's (its runctl:project tag, so that
    `create --project X` then `train` agree), else the script's project folder."""
    from .sync import check_project_name, project_root

    return check_project_name(explicit or ctx.settings.project or instance_project or project_root(script).name)


def new_run_id(ctx: Context) -> str:
    return ctx.now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _running_instance(ctx: Context, instance_id: str, action: str) -> Instance:
    inst = ec2.describe(ctx, validate_instance_id(instance_id))
    ec2.refuse_unless_state(inst, "running", action)
    return inst


def _already_running(instance_id: str, fields: dict[str, str]) -> GuardRefused:
    return GuardRefused(
        f"Training already running on instance {instance_id} (PID: {fields.get('pid', '?')}).",
        [cmd(f"aws monitor {instance_id}", "Wait for current training to complete"),
         cmd(f"aws stop {instance_id}", "Stop current training gracefully"),
         cmd(f"aws monitor {instance_id} --follow", "Check training status")],
    )


# --- start --------------------------------------------------------------------------------------

def start_training(ctx: Context, instance_id: str, script: str | Path, script_args: Sequence[str] = (), *,
                   project: str | None = None, sync_code: bool = True, bucket: str | None = None,
                   resume: str | None = None, echo: Echo = _quiet, guardian_request: Any = None,
                   project_root_dir: str | Path | None = None) -> Launch:
    """Start ``script`` on the instance; ``guardian_request`` (guardian.Request) adds autostop/budget caps."""
    script_path = Path(script).expanduser()
    if not script_path.is_file():
        raise UsageError(f"Training script not found: {script}",
                         [Step("Check the path (it is relative to the current folder: the notebook's, in Jupyter)"),
                          Step(f"Current folder: {Path.cwd()}")])
    from .sync import check_sync_root, check_syntax, project_root

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
    rel_script = script_path.resolve().relative_to(root).as_posix()
    inst = _running_instance(ctx, instance_id, "start training")
    name = project_name(ctx, script_path.resolve(), project, inst.project)
    world = ctx.world().label()
    env = ssm.remote_root_env(ctx)

    launch_env = dict(env)
    synced: dict[str, str] = {}
    applied: dict[str, str] | None = None
    if sync_code:
        # Round trip 1 (read-only): which code does the instance hold?
        bundle_env, synced, applied = _prepare_sync(ctx, instance_id, root, name, env, bucket, echo)
        if bundle_env:
            launch_env.update(bundle_env)
    run_id = new_run_id(ctx)
    launch_env["RUNCTL_META_JSON"] = json.dumps(
        {"run_id": run_id, "script": rel_script, "args": list(script_args), "project": name,
         "started": ctx.now().isoformat(timespec="seconds"), "world": world})
    if resume:
        launch_env["RUNCTL_RESUME_FROM"] = resume
    from . import guardian  # hook: guardian env/scripts, `--resume auto` fetch from S3 (guardian.py)

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
    out = remote.parse_fields(result.stdout)
    if result.exit_code == 3 or out.get("refused") == "running":
        raise _already_running(instance_id, out)
    if out.get("sync_failed") == "1":
        raise BackendError(f"Code sync to {instance_id} failed, so training was not started: "
                           f"{_first_line(result.stderr)}", _sync_failure_steps(result.stderr))
    if out.get("started") != "1" and "code directory not found" in result.stderr:
        raise GuardRefused(f"The project '{name}' has never been synced to {instance_id}, so there is nothing to run.",
                           [cmd(f"aws train {instance_id} {script} --sync-code", "Sync it (drop --no-sync-code)")])
    if out.get("started") != "1" and "script not found" in result.stderr:
        raise GuardRefused(f"{rel_script} is not in the code on {instance_id} (it was started with --no-sync-code).",
                           [cmd(f"aws train {instance_id} {script} --sync-code", "Sync the project first")])
    if out.get("started") != "1":
        raise BackendError(
            f"Training did not start on {instance_id}: {_first_line(result.stderr) or result.status}",
            [cmd(f"aws monitor {instance_id}", "Look at the instance's last log"),
             Step("Check the script path is inside the project folder that is synced")])
    if applied is not None:
        _manifest_cache().put(instance_id, name, applied)
    _tag_run(ctx, instance_id, run_id, "running", project=name)
    launch = Launch(instance_id, name, run_id, int(out.get("pid", "0")), out.get("log", ""), synced)
    pieces = [f"[{world}] Started run {run_id} on {instance_id} (PID {launch.pid}, project {name})"]
    if synced:
        pieces.append(f"code synced: {synced.get('uploaded', '0')} file(s) sent, {synced.get('deleted', '0')} deleted")
    echo("; ".join(pieces))
    say_kept(instance_id, [rec["kept"] for rec in remote.parse_records(result.stdout, "kept")], echo)
    return launch


def _sync_failure_steps(stderr: str) -> list[Step]:
    """Steps for what sync_apply.sh said, not one guess for every failure."""
    if "outside the code directory" in stderr or "refusing code bundle" in stderr:
        return [Step("A folder under runctl/<project>/code on the instance is a link leading outside it: "
                     "runctl never writes through it"),
                Step("Remove that link on the instance (or train with another --project), then train again")]
    if "download" in stderr or "curl" in stderr:
        return [Step("Check the bucket is reachable from the instance (outbound HTTPS)"),
                Step("Run the command again, or use --no-sync-code")]
    if "pip install" in stderr or "venv" in stderr:
        return [Step("Fix requirements.txt (the pip output is in the message above and in the run's sync log)"),
                Step("Run the command again")]
    return [Step("Run the command again"), Step("Or use --no-sync-code to run the code already on the instance")]


def _names(rels: list[str]) -> str:
    return ", ".join(shown_name(r) for r in rels[:5]) + (f" (+{len(rels) - 5} more)" if len(rels) > 5 else "")


def say_kept(instance_id: str, kept: list[str], echo: Echo) -> None:
    if kept:
        echo(f"Kept {len(kept)} file(s) on {instance_id} that changed there since runctl synced them, although "
             f"they are gone locally: {_names(kept)} (no longer synced)")


def _manifest_cache():
    from .aws.session import client_cache_dir
    from .sync import ManifestCache

    return ManifestCache(client_cache_dir() / "manifests.json")


def _prepare_sync(ctx: Context, instance_id: str, root: Path, project: str, env: dict[str, str],
                  bucket: str | None, echo: Echo) -> tuple[dict[str, str], dict[str, str], dict[str, str] | None]:
    """Plan against the instance's manifest; upload one bundle with only what changed.

    Returns the launch environment for the bundle (empty when nothing changed), a summary, and the
    manifest the instance will hold once the bundle is applied.
    """
    from . import sync

    def fetch(known: str, offset: int) -> str:
        result = ssm.run(ctx, instance_id, "sync_manifest", [project, known, str(offset)], env)
        if result.exit_code != 0:
            raise BackendError(f"Could not read the code manifest on {instance_id}: {_first_line(result.stderr)}",
                               [cmd(f"aws status {instance_id}", "Check the instance")])
        return result.stdout

    excluded: dict[str, str] = {}
    local = sync.collect_files(root, excluded)
    _say_excluded(excluded, echo)
    drifted: list[str] = []
    gone: set[str] = set()
    remote_manifest = sync.read_remote_manifest(fetch, _manifest_cache().get(instance_id, project),
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
    bundle = sync.make_bundle(root, plan, local)
    name = s3.bucket_for(ctx, bucket)
    digest = sync.sha256_bytes(bundle)
    key = f"runctl/{project}/code/bundle-{digest[:16]}.tar.gz"
    s3.put_bytes(ctx, name, key, bundle)
    echo(f"Code sync: {len(plan.upload)} changed file(s), {len(plan.delete)} deletion(s), "
         f"{len(bundle):,} bytes via s3://{name}/{key}")
    env = {"RUNCTL_SYNC_URL": s3.presign_get(ctx, name, key), "RUNCTL_SYNC_SHA256": digest}
    return env, {"uploaded": str(len(plan.upload)), "deleted": str(len(plan.delete))}, plan.manifest


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


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def _tag_run(ctx: Context, instance_id: str, run_id: str, state: str, *, project: str | None = None) -> None:
    # the project tag follows the newest training: monitor, stop and the guards read it
    tags = {"runctl:run-id": run_id, "runctl:run-state": state}
    if project:
        tags["runctl:project"] = project
    ec2.set_tags(ctx, instance_id, tags)


# --- following a log ----------------------------------------------------------------------------

def tail_fetcher(ctx: Context, instance_id: str, log_path: str) -> Callable[[int, int], str]:
    env = ssm.remote_root_env(ctx)

    def fetch(offset: int, max_bytes: int) -> str:
        result = ssm.run(ctx, instance_id, "tail", [log_path, str(offset), str(max_bytes)], env)
        if result.exit_code != 0:
            raise BackendError(f"Could not read the log on {instance_id}: {_first_line(result.stderr)}",
                               [cmd(f"aws status {instance_id}", "Check the instance")])
        return result.stdout

    return fetch


def _transient(exc: BaseException) -> bool:
    # Throttling and 5xx are retried inside botocore already; what reaches here after that is a
    # connection hiccup or an instance that went away.
    from botocore.exceptions import ConnectionError as BotoConnectionError

    return isinstance(exc, BotoConnectionError)


Fetch = Callable[[int, int], str]


class InstanceEnded(BackendError):
    """The instance stopped or terminated while its run's log was being followed."""

    def __init__(self, message: str, steps: list, *, instance_state: str) -> None:
        super().__init__(message, steps)
        self.instance_state = instance_state


def _state_if_not_running(ctx: Context, instance_id: str) -> str | None:
    try:
        state = ec2.describe(ctx, instance_id).state
    except BackendError:
        return None  # cannot tell: the original error stands
    return None if state in ("pending", "running") else state


def follow_run(ctx: Context | None, launch: Launch, on_text: Callable[[str], Any], *,
               should_stop: Callable[[], bool] | None = None, start_offset: int = 0,
               from_line_start: bool = False, fetch: Fetch | None = None,
               echo: Echo | None = None) -> logs.FollowResult:
    """Follow a run's log by byte offset until it ends (``fetch`` overrides the SSM tail, e.g. local runs);
    far behind, catch up through S3 (log_catchup.py; ``echo`` hears once when it cannot)."""
    poll = 0.3 if ctx is None or ctx.is_sandbox else 2.0
    fetch_is_remote = fetch is None and ctx is not None
    fetch = fetch or tail_fetcher(ctx, launch.instance_id, launch.log_path)
    if fetch_is_remote and ctx.is_sandbox:
        fetch = _while_the_sandbox_answers(fetch, launch)
    catch_up = log_catchup.S3CatchUp(ctx, launch.instance_id, launch.log_path, launch.project, launch.run_id,
                                     echo or _to_log) if fetch_is_remote else None
    try:
        return logs.follow(fetch, on_text, poll_interval=poll, is_transient=_transient, should_stop=should_stop,
                           start_offset=start_offset, from_line_start=from_line_start, catch_up=catch_up,
                           catch_up_bytes=log_catchup.CATCH_UP_BYTES)
    except SandboxNotRunning:
        raise  # no AWS call to ask about the instance: the world that held it is gone
    except BackendError as exc:
        state = _state_if_not_running(ctx, launch.instance_id) if fetch_is_remote else None
        if state is not None:  # stopped or terminated under the follower (`stop` elsewhere, the guardian)
            raise InstanceEnded(
                f"Run {launch.run_id}: instance {launch.instance_id} is {state}; the run ended with it.",
                [cmd(f"aws status {launch.instance_id}", "See the instance and its last run"),
                 cmd(f"aws checkpoints {launch.instance_id}", "See the checkpoints kept")],
                instance_state=state) from exc
        if "credential" in exc.message.lower() or "expired" in exc.message.lower():
            raise BackendError(
                f"Stopped following run {launch.run_id}: {exc.message} The training is unaffected.",
                [Step("Refresh your AWS credentials (`aws sso login`)"),
                 cmd(f"aws monitor {launch.instance_id} --follow", "Re-attach to the log")]) from exc
        raise


def _while_the_sandbox_answers(fetch: Fetch, launch: Launch) -> Fetch:
    """Before each read, that the sandbox server still takes connections (on loopback a dead one
    refuses at once): a dead sandbox is said within a poll, not after ~2 minutes of retries."""
    from urllib.parse import urlsplit

    from .aws.session import sandbox_endpoint

    where = urlsplit(sandbox_endpoint() or "")

    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            socket.create_connection((where.hostname or "127.0.0.1", where.port or 80), timeout=2).close()
        except OSError as exc:
            raise SandboxNotRunning(
                f"The sandbox stopped while following run {launch.run_id} on {launch.instance_id}: the run's "
                "fate is unknown (a sandbox's instances and their processes end with its server).",
                [cmd("sandbox start", "Start a new sandbox (it says what was lost)"),
                 cmd("aws create t3.micro --wait", "Then create an instance and train again")]) from exc
        return fetch(*args, **kwargs)

    return checked


REATTACH_CONTEXT_BYTES = 4096  # `monitor --follow` shows this much of the log before the live part

# What launch.sh's wrapper writes into the log when the run is sent SIGTERM (`stop`, the guardian,
# an instance shutting down): the run ended because it was told to, whatever its exit code.
STOP_SIGNAL_LINE = "[runctl] received SIGTERM (stop requested)"


def run_state(exit_code: int | None, tail: str) -> str:
    """succeeded / failed / stopped, from the exit code and the last lines of the log."""
    if STOP_SIGNAL_LINE in tail:
        return "stopped"
    return "succeeded" if exit_code == 0 else "failed"


def finish_run(ctx: Context | None, launch: Launch, exit_code: int | None, tail: str) -> TrainResult:
    state = run_state(exit_code, tail)
    if ctx is not None:  # local runs have no instance to tag
        # a stopped run keeps the tag `stop` gave it (the guard and the cost table read it)
        _tag_run(ctx, launch.instance_id, launch.run_id, "stopped" if state == "stopped" else f"exit {exit_code}")
    return TrainResult(launch.instance_id, launch.project, launch.run_id, state, exit_code, tail)


def _tail_lines(text: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-n:])


def failure(result: TrainResult) -> TrainingFailed:
    return TrainingFailed(
        f"Training run {result.run_id} on {result.instance_id} failed with exit code {result.exit_code}.",
        [cmd(f"aws monitor {result.instance_id} --run {result.run_id}", "Read its full log"),
         cmd(f"aws runs {result.instance_id}", "See the run history")],
        result=result, details=["Last lines of the log:", *[f"  {line}" for line in result.log_tail.splitlines()]])


class _Progress:
    """tqdm.auto progress driven by the script's epoch lines."""

    def __init__(self) -> None:
        self.parser = logs.ProgressParser()
        self.bar = None

    def feed(self, text: str) -> None:
        for progress in self.parser.feed(text):
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=progress.total, unit=progress.kind, desc="training")
            if self.bar.total != progress.total:
                self.bar.total = progress.total
            self.bar.n = progress.current
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def wait_in_foreground(ctx: Context | None, launch: Launch, write: Callable[[str], Any], *,
                       start_offset: int = 0, from_line_start: bool = False,
                       fetch: Fetch | None = None, prefix: str = "runctl",
                       detach_hint: str | None = None) -> TrainResult:
    """Stream the log to ``write`` with a progress bar until the run ends; Ctrl-C detaches.

    ``prefix`` ("%runctl" in a notebook) goes into the re-attach hint; ``detach_hint`` replaces it
    (a local run is followed with ``tail -f``, not a runctl command)."""
    progress = _Progress()
    collected: list[str] = []

    def on_text(text: str) -> None:
        collected.append(text)
        write(text)
        progress.feed(text)

    def note(line: str) -> None:  # on a line of its own
        write(("\n" if collected and not collected[-1].endswith("\n") else "") + f"[runctl] {line}\n")

    try:
        result = follow_run(ctx, launch, on_text, start_offset=start_offset, from_line_start=from_line_start,
                            fetch=fetch, echo=note)
    except InstanceEnded as ended:
        write(f"\n[runctl] {ended.message}\n")
        return TrainResult(launch.instance_id, launch.project, launch.run_id, "stopped", None,
                           _tail_lines("".join(collected)))
    except KeyboardInterrupt:
        progress.close()
        hint = detach_hint or (f"Re-attach with `{prefix} aws monitor {launch.instance_id} --follow`, "
                               f"stop it with `{prefix} aws stop {launch.instance_id}`.")
        write(f"\nDetached from run {launch.run_id}; it goes on. {hint}\n")
        return TrainResult(launch.instance_id, launch.project, launch.run_id, "detached")
    finally:
        progress.close()
    return finish_run(ctx, launch, result.exit_code, _tail_lines("".join(collected)))


class BackgroundFollower:
    """Keeps a notebook display (a display handle) updated from a thread; the cell returns at once."""

    def __init__(self, ctx: Context | None, launch: Launch, max_lines: int = 200, fetch: Fetch | None = None):
        from IPython.display import display

        self.ctx, self.launch, self.max_lines, self.fetch = ctx, launch, max_lines, fetch
        self.lines: list[str] = []
        self.partial = ""
        self.parser = logs.ProgressParser()
        self.result: TrainResult | None = None
        self._stop = threading.Event()
        self.handle = display(self._render("starting…"), display_id=True)
        self.thread = threading.Thread(target=self._run, name=f"runctl-follow-{launch.run_id}", daemon=True)
        self.thread.start()

    def _render(self, status: str):
        import html

        from IPython.display import HTML

        progress = self.parser.latest_epoch or self.parser.latest
        bar = ""
        if progress:
            pct = int(100 * progress.current / max(progress.total, 1))
            bar = (f"<div><progress max='{progress.total}' value='{progress.current}'></progress> "
                   f"{progress.kind} {progress.current}/{progress.total} ({pct}%)</div>")
        body = html.escape("\n".join(self.lines[-self.max_lines:] + ([self.partial] if self.partial else [])))
        return HTML(f"<div class='runctl-live'><b>run {self.launch.run_id} on {self.launch.instance_id}</b>: "
                    f"{html.escape(status)}{bar}<pre style='max-height:24em;overflow:auto'>{body}</pre></div>")

    def _on_text(self, text: str) -> None:
        self.parser.feed(text)
        data = self.partial + text
        parts = data.split("\n")
        self.partial = parts.pop()
        self.lines.extend(parts)
        self.handle.update(self._render("running"))

    def _run(self) -> None:
        try:
            follow = follow_run(self.ctx, self.launch, self._on_text, should_stop=self._stop.is_set,
                                fetch=self.fetch, echo=lambda line: self.lines.append(f"[runctl] {line}"))
            if self._stop.is_set():
                self.handle.update(self._render("detached (the run goes on)"))
                return
            self.result = finish_run(self.ctx, self.launch, follow.exit_code, _tail_lines("\n".join(self.lines)))
            self.handle.update(self._render(self.result.summary()))
        except Exception as exc:  # a thread cannot raise into the cell: show it in the display
            message = exc.render("%runctl") if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
            self.handle.update(self._render(f"stopped following: {message}"))

    def stop(self) -> None:
        self._stop.set()


_FOLLOWERS: dict[str, BackgroundFollower] = {}


def train_command(ctx: Context, c: Any, fe: Any) -> TrainResult | None:
    from . import guardian  # --autostop/--max-hours/--max-cost: the on-instance guardian (guardian.py)

    launch = start_training(ctx, c.instance_id, c.script, c.script_args, project=c.project,
                            sync_code=c.sync_code, bucket=c.bucket, resume=c.resume, echo=fe.echo,
                            guardian_request=guardian.request_from_command(c), project_root_dir=c.project_root)
    guardian.after_launch(ctx, launch.instance_id, launch.run_id)
    if c.wait:
        import sys

        result = wait_in_foreground(ctx, launch, lambda t: (sys.stdout.write(t), sys.stdout.flush()),
                                    prefix=fe.prefix)
        if result.state == "failed":
            raise failure(result)
        return result  # each front end shows it once (a notebook's Out, the shell's stdout)
    return stream_or_detach(ctx, launch, fe, f"aws monitor {launch.instance_id} --follow")


def stream_or_detach(ctx: Context | None, launch: Launch, fe: Any, monitor: str,
                     fetch: Fetch | None = None) -> TrainResult | None:
    """Without --wait: keep a display in this cell updated from a thread (notebook), or say how to follow."""
    if fe.notebook:
        previous = _FOLLOWERS.pop(launch.instance_id, None)
        if previous:
            previous.stop()
        _FOLLOWERS[launch.instance_id] = BackgroundFollower(ctx, launch, fetch=fetch)
        return None
    fe.echo(f"Follow it with: {fe.prefix} {monitor}")
    return TrainResult(launch.instance_id, launch.project, launch.run_id, "running")


# --- status / monitor ---------------------------------------------------------------------------

def run_status(ctx: Context, instance_id: str, project: str, run_id: str | None = None) -> dict[str, str]:
    args = [project] + ([run_id] if run_id else [])
    result = ssm.run(ctx, instance_id, "status", args, ssm.remote_root_env(ctx))
    if result.exit_code != 0:
        raise BackendError(f"Could not read the run status on {instance_id}: {_first_line(result.stderr)}",
                           [cmd(f"aws status {instance_id}", "Check the instance")])
    return remote.parse_fields(result.stdout)


def _project_for_instance(ctx: Context, inst: Instance, explicit: str | None) -> str:
    return explicit or inst.project or ctx.settings.project or Path.cwd().name


def monitor_command(ctx: Context, c: Any, fe: Any) -> TrainResult | None:
    import sys

    inst = _running_instance(ctx, c.instance_id, "read its training log")
    project = _project_for_instance(ctx, inst, c.project)
    st = run_status(ctx, c.instance_id, project, c.run_id)
    if c.run_id and st.get("state", "none") == "none":
        raise UsageError(f"No run {c.run_id} of project {project} on {c.instance_id}.",
                         [cmd(f"aws runs {c.instance_id} --project {project}", "List the runs there"),
                          Step("Pass --project NAME when the run belongs to another project")])
    if st.get("state", "none") == "none" or not st.get("run_id"):
        fe.echo(f"[{ctx.world().label()}] No training runs for project {project} on {c.instance_id}.")
        return None
    log_path = st.get("log") or f"runctl/{project}/runs/{st['run_id']}/log"
    launch = Launch(c.instance_id, project, st["run_id"], int(st.get("pid") or 0), log_path)
    size = int(st.get("log_size") or 0)
    state = st.get("state")
    shown_state = "stopped" if state == "exited" and st.get("stopped") == "1" else state
    header = f"[{ctx.world().label()}] Run {launch.run_id} on {c.instance_id}: {shown_state}"
    if state == "exited":
        header += f" (exit code {st.get('exit_code')})"
    fe.echo(header)
    if c.follow and state == "running":
        # re-attach with the last few KB of context, from a whole line
        result = wait_in_foreground(ctx, launch, lambda t: (sys.stdout.write(t), sys.stdout.flush()),
                                    start_offset=max(0, size - REATTACH_CONTEXT_BYTES), from_line_start=True,
                                    prefix=fe.prefix)
        return result
    # A finished run asked by --run shows its whole log; otherwise the tail.
    start = 0 if c.run_id else max(0, size - logs.MAX_CHUNK_BYTES)
    text = log_catchup.read_range(tail_fetcher(ctx, launch.instance_id, launch.log_path), log_catchup.S3CatchUp(
        ctx, launch.instance_id, launch.log_path, project, launch.run_id, fe.echo), start, size)
    lines = text.splitlines()
    shown = lines if c.run_id else lines[-c.lines:]
    sys.stdout.write("\n".join(shown) + "\n")
    return None


# --- checkpoints, stop and terminate --------------------------------------------------------------

def before_stop(ctx: Context, inst: Instance, *, force: bool, echo: Echo) -> Listing:
    """SIGTERM the training and wait (bounded) for it to save; then, once every process of the run is
    gone, list the checkpoints of every project on the disk, upload those without a verified copy and
    record what was found (the evidence a later terminate of the stopped instance checks)."""
    iid = inst.instance_id
    bucket = s3.bucket_for(ctx, None, required=False)
    if inst.state != "running":
        return Listing(doubt=f"{iid} was {inst.state}: runctl could not list its disk")
    if iid not in ec2.ssm_online(ctx, [iid]):
        echo(f"⚠️  {iid}'s SSM agent is not Online: runctl cannot ask a training there to "
             "checkpoint or upload its checkpoints before stopping.")
        listing = Listing(doubt="its SSM agent was not Online when it was stopped: runctl could not list its disk")
        guard.record_evidence(ctx, inst, listing, bucket)
        return listing
    project = _project_for_instance(ctx, inst, None)
    wait_s = 0 if force else ctx.settings.stop_wait_seconds
    result = ssm.run(ctx, iid, "stop", [project, str(wait_s)], ssm.remote_root_env(ctx))
    fields = remote.parse_fields(result.stdout)
    run_id = fields.get("run_id") or inst.tags.get("runctl:run-id") or "unknown-run"
    if fields.get("stopped") == "1":
        if fields.get("still_running") == "1":
            how = "some of its processes survived SIGKILL; they end with the instance"
        elif fields.get("killed") == "1":
            how = (f"it did not exit within {wait_s} s, so runctl ended it (SIGKILL): a checkpoint it was "
                   "still writing is lost (`config set stop_wait_seconds N` gives it longer)")
        else:
            how = f"it exited with code {fields.get('exit_code', '?')}"
        echo(f"Asked training run {run_id} (PID {fields.get('pid', '?')}) to checkpoint and stop (SIGTERM): {how}")
        _tag_run(ctx, iid, run_id, "stopped")
    listing = guard.list_checkpoints(ctx, iid, None)
    if fields.get("still_running") == "1" and not listing.doubt:
        listing.doubt = "some of the training's processes survived SIGKILL and may have written more"
    if listing.checkpoints and bucket is None:
        echo(f"{len(listing.checkpoints)} checkpoint(s) stay on the instance's disk (no S3 bucket configured: "
             "`runctl config set bucket NAME` to keep copies)")
    elif listing.checkpoints:
        for name in sorted({ck.project for ck in listing.checkpoints}):
            # checkpoints of other projects on the disk go up too, under a prefix naming this instance
            guard.upload_checkpoints(ctx, iid, name, run_id if name == project else f"kept-{iid}",
                                     [ck for ck in listing.checkpoints if ck.project == name], bucket, echo)
        saved = [ck for ck in listing.checkpoints if ck.verified]
        echo(f"Saved {len(saved)}/{len(listing.checkpoints)} checkpoint(s) to s3://{bucket}/runctl/"
             + (f" (newest: {sorted(saved, key=lambda c: c.mtime)[-1].s3_key})" if saved else ""))
    if listing.doubt:
        echo(f"⚠️  {listing.doubt}: a later terminate will refuse until runctl can list the disk again.")
    guard.record_evidence(ctx, inst, listing, bucket)
    return listing


def record_stop(ctx: Context, inst: Instance) -> None:
    """Add the run that just ended to the instance's cost ledger (LaunchTime resets on start)."""
    from .costs import ledger_after_stop
    from .resources import price_book

    if not inst.managed or inst.launch_time is None:
        return
    book = price_book(ctx)
    quote = (book.spot(inst.region, inst.availability_zone, inst.instance_type) if inst.lifecycle == "spot"
             else book.on_demand(inst.region, inst.instance_type))
    if quote.usd_per_hour is None:
        return
    ec2.set_tags(ctx, inst.instance_id, ledger_after_stop(inst.tags, inst.launch_time, ctx.now(), quote.usd_per_hour))


def end_spot_instance(ctx: Context, inst: Instance, *, wait: bool, echo: Echo, listing: Listing,
                      force: bool = False) -> Instance:
    """A one-time spot instance cannot be stopped, only terminated: only once every checkpoint on its
    disk has a verified copy (or with --force); otherwise it keeps running and the user is told why."""
    iid = inst.instance_id
    world = ctx.world().label()
    unsaved = listing.unverified()
    if (listing.doubt or unsaved) and not force:
        why = listing.doubt or f"{len(unsaved)} checkpoint(s) on its disk have no verified copy in S3"
        raise GuardRefused(
            f"{iid} is a one-time spot instance (AWS cannot stop it, only terminate it); runctl kept it "
            f"running because {why}.",
            [cmd(f"aws checkpoints {iid}", "See its checkpoints and which have S3 copies"),
             cmd("config set bucket NAME", "Without a bucket: set one") if not s3.bucket_for(ctx, None, required=False)
             else cmd(f"aws stop {iid}", "Try the stop again (it uploads what has no copy)"),
             cmd(f"aws terminate {iid} --snapshot", "Or save its disk as an EBS snapshot, then terminate"),
             cmd(f"aws terminate {iid} --force", "Or terminate anyway (those checkpoints will be lost)")],
            details=[f"   Checkpoint: runctl/{ck.project}/checkpoints/{ck.relpath}" for ck in unsaved[:10]])
    handled = (f"Its {len(listing.checkpoints)} checkpoint(s) have verified copies in S3" if listing.checkpoints
               else "It holds no checkpoints")
    echo(f"[{world}] {iid} is a one-time spot instance: AWS cannot stop it, only terminate it. "
         f"{handled}; terminating it now.")
    ec2.terminate(ctx, iid)
    if wait:
        ec2.wait_for(ctx, iid, "terminated", echo)
    return ec2.describe(ctx, iid)


# --- listings -----------------------------------------------------------------------------------

def checkpoints_frame(ctx: Context, instance_id: str, project: str | None = None):
    import pandas as pd

    inst = ec2.describe(ctx, validate_instance_id(instance_id))
    project = _project_for_instance(ctx, inst, project)
    listing = guard.list_checkpoints(ctx, instance_id, project) if inst.state == "running" else guard.Listing()
    on_instance = listing.checkpoints
    bucket = s3.bucket_for(ctx, None, required=False)
    guard.verify_copies(ctx, bucket, project, on_instance)
    rows = [{"where": "instance", "checkpoint": ck.relpath, "size": ck.size, "md5": ck.md5,
             "modified": pd.Timestamp(ck.mtime, unit="s", tz="UTC"), "s3_copy": ck.s3_key or ""}
            for ck in on_instance]
    if bucket:
        copies = s3.list_objects(ctx, bucket, checkpoint_prefix(project))
        stored = s3.stored_md5s(ctx, bucket, [obj.key for obj in copies.values()])
        for rel, obj in copies.items():
            rows.append({"where": "s3", "checkpoint": rel, "size": obj.size, "md5": stored.get(obj.key) or "",
                         "modified": pd.NaT, "s3_copy": f"s3://{bucket}/{obj.key}"})
    df = pd.DataFrame(rows, columns=["where", "checkpoint", "size", "md5", "modified", "s3_copy"])
    df.attrs["runctl_kind"] = "checkpoints"
    df.attrs["runctl_caption"] = (f"Checkpoints of project {project} ({ctx.world().label()})"
                                  + (f" — PARTIAL: {listing.doubt}; run it again" if listing.doubt else ""))
    return df


def runs_frame(ctx: Context, instance_id: str, project: str | None = None):
    import pandas as pd

    inst = _running_instance(ctx, instance_id, "read its run history")
    project = _project_for_instance(ctx, inst, project)
    env = ssm.remote_root_env(ctx)
    records, partial = remote.read_pages(
        lambda start: ssm.run(ctx, instance_id, "runs", [project, str(start)], env), "run")
    rows = []
    for r in records:  # newest first
        args = r.get("args_json") or "[]"
        try:
            args_list = json.loads(args)
        except json.JSONDecodeError:
            args_list = [args]
        rows.append({"run_id": r["run"], "script": r.get("script", ""), "args": args_list,
                     "started": pd.to_datetime(r.get("started") or None, utc=True),
                     "ended": pd.to_datetime(r.get("ended") or None, utc=True),
                     # a run SIGTERMed by stop or the guardian exited because it was told to
                     "state": "stopped" if r.get("state") == "exited" and r.get("stopped") == "1"
                     else r.get("state", ""),
                     "exit_code": pd.to_numeric(r.get("exit_code") or None),
                     "last_checkpoint": r.get("last_checkpoint", "")})
    df = pd.DataFrame(rows, columns=["run_id", "script", "args", "started", "ended", "state", "exit_code",
                                     "last_checkpoint"])
    df["exit_code"] = df["exit_code"].astype("Int64")
    df.attrs["runctl_kind"] = "runs"
    df.attrs["runctl_caption"] = (f"Runs of project {project} on {instance_id} ({ctx.world().label()}), newest first"
                                  + (f" — PARTIAL: {partial}; run it again" if partial else ""))
    return df


def wait_for_exit(ctx: Context, launch: Launch, timeout_s: float = 600) -> dict[str, str]:
    """Poll status until the run has exited (for API users and tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = run_status(ctx, launch.instance_id, launch.project, launch.run_id)
        if st.get("state") != "running" or time.monotonic() > deadline:
            return st
        time.sleep(0.3 if ctx.is_sandbox else 3)
