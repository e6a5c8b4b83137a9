"""The one error family of runctl-jupyter, and the single place botocore errors are translated.

    RunctlError                 exit 4 unless a subclass says otherwise
    ├── UsageError              exit 2  bad flags, bad IDs, bad values (nothing was sent)
    ├── GuardRefused            exit 3  a safety guard said no (nothing was changed)
    ├── BackendError            exit 4  AWS or the sandbox failed or refused
    │   ├── SandboxNotRunning
    │   └── CredentialsError
    └── TrainingFailed          exit 5  the training itself exited non-zero (carries the result)

Every error is: one line saying what went wrong, then ``To resolve:`` and numbered steps.
A step may carry a runctl command (without prefix); front ends print it with their own prefix:
``%runctl aws start i-…`` in a notebook, ``runctl aws start i-…`` in a shell.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

SHELL_PREFIX = "runctl"
NOTEBOOK_PREFIX = "%runctl"


@dataclass(frozen=True)
class Step:
    """One numbered step of a fix: some words, a runctl command (no prefix), or both."""

    text: str = ""
    command: str | None = None
    shell_note: str = ""  # said only in a shell, after the command (what a notebook does by itself)

    def render(self, prefix: str) -> str:
        if self.command is None:
            return self.text
        cmd = f"{prefix} {self.command}"
        if self.shell_note and prefix == SHELL_PREFIX:
            cmd += f" ({self.shell_note})"
        return f"{self.text}: {cmd}" if self.text else cmd

    def said(self, template: str) -> Hint:
        """A progress line naming this step's command where ``template`` has ``{}`` (see :class:`Hint`)."""
        return Hint(template, self.command or "")


StepLike = Step | str


class Hint(str):
    """A progress line that names runctl commands, stored without prefix as a Step's are.

    ``Hint("Restore it with `{}`.", "aws create t3.micro --from-snapshot snap-…")``: as a plain string
    it reads with the shell's prefix (``runctl aws create …``); a front end's echo shows
    :meth:`render` with its own (``%runctl aws create …`` in a notebook).
    """

    template: str
    commands: tuple[str, ...]

    def __new__(cls, template: str, *commands: str) -> Hint:
        line = super().__new__(cls, template.format(*(f"{SHELL_PREFIX} {c}" for c in commands)))
        line.template, line.commands = template, commands
        return line

    def render(self, prefix: str) -> str:
        return self.template.format(*(f"{prefix} {c}" for c in self.commands))


def cmd(command: str, text: str = "") -> Step:
    """A step that is a runctl command, e.g. ``cmd("aws start i-0123", "Start it")``."""
    return Step(text=text, command=command)


def sandbox_step(text: str = "Or use the embedded sandbox") -> Step:
    """``sandbox start``: in a notebook the kernel's commands then go to the sandbox by themselves; a shell
    says ``--sandbox`` on each command (each ``runctl`` is a new process)."""
    return Step(text=text, command="sandbox start",
                shell_note=f"then add --sandbox to each command: `{SHELL_PREFIX} --sandbox aws create …`")


def _as_step(step: StepLike) -> Step:
    return step if isinstance(step, Step) else Step(text=step)


LONG_WORD = 120


def _shorten_long_words(message: str) -> str:
    """An error line never echoes a 10 KB value whole: a word longer than LONG_WORD characters keeps its
    start and says how long it was."""
    return re.sub(rf"\S{{{LONG_WORD + 1},}}", lambda m: f"{m.group()[:60]}…({len(m.group()):,} characters)",
                  message)


class RunctlError(Exception):
    exit_code = 4

    def __init__(self, message: str, steps: Sequence[StepLike] = (), *, details: Sequence[str] = ()):
        if "\n" in message:
            raise ValueError("an error message is one line; put the rest in details or steps")
        message = _shorten_long_words(message)
        super().__init__(message)
        self.message = message
        self.steps: tuple[Step, ...] = tuple(_as_step(s) for s in steps)
        # Lines printed *before* the error line (e.g. the terminate guard's warning block).
        self.details: tuple[str, ...] = tuple(details)

    def render(self, prefix: str = SHELL_PREFIX, *, with_details: bool = True) -> str:
        lines = list(self.details) if with_details else []
        lines.append(f"Error: {self.message}")
        if self.steps:
            lines.append("To resolve:")
            lines.extend(f"  {i}. {s.render(prefix)}" for i, s in enumerate(self.steps, 1))
        return "\n".join(lines)

    def __str__(self) -> str:  # what a plain `print(err)` / logging shows
        return self.render(SHELL_PREFIX, with_details=False)

    # IPython calls this instead of printing a traceback (see InteractiveShell.showtraceback).
    def _render_traceback_(self) -> list[str]:
        return self.render(NOTEBOOK_PREFIX).splitlines()


class UsageError(RunctlError):
    exit_code = 2


class GuardRefused(RunctlError):
    exit_code = 3


class BackendError(RunctlError):
    exit_code = 4


class SandboxNotRunning(BackendError):
    pass


class CredentialsError(BackendError):
    pass


class TrainingFailed(RunctlError):
    exit_code = 5

    def __init__(self, message: str, steps: Sequence[StepLike] = (), *, result: Any = None,
                 details: Sequence[str] = ()):
        super().__init__(message, steps, details=details)
        self.result = result


# --- botocore translation -------------------------------------------------------------------

_INSTANCE_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceId", "InvalidInstanceID"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
            "UnrecognizedClientException", "AuthFailure"}


def _world_steps() -> list[Step]:
    return [
        cmd("sandbox start", "To work without an AWS account, start the embedded sandbox"),
        Step("Or configure AWS: `aws configure` / `aws sso login`, or set AWS_PROFILE"),
    ]


@contextlib.contextmanager
def translate_aws_errors(action: str, instance_id: str | None = None) -> Iterator[None]:
    """Map botocore/boto3 failures raised inside the block to RunctlErrors (``raise … from``)."""
    try:
        yield
    except RunctlError:
        raise
    except Exception as exc:  # only botocore types are translated; anything else re-raises
        err = _translate(exc, action, instance_id)
        if err is None:
            raise
        raise err from exc


def _translate(exc: Exception, action: str, instance_id: str | None) -> RunctlError | None:
    from botocore import exceptions as bexc  # lazy: importing runctl must not import botocore

    if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
        return CredentialsError(f"No AWS credentials found while trying to {action}.", _world_steps())
    if isinstance(exc, bexc.NoRegionError):
        return CredentialsError(
            f"No AWS region is set, so runctl cannot {action}.",
            [cmd("config set region us-east-1", "Set a default region"),
             Step("Or set AWS_REGION / AWS_DEFAULT_REGION, or pass --region"),
             sandbox_step()],
        )
    if isinstance(exc, bexc.TokenRetrievalError | bexc.SSOError):
        return CredentialsError(
            f"AWS credentials expired while trying to {action}.",
            [Step("Refresh them: `aws sso login` (or renew your session)"), Step("Run the command again")],
        )
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectionClosedError | bexc.ReadTimeoutError
                  | bexc.ConnectTimeoutError):
        return BackendError(
            f"Could not reach the AWS endpoint while trying to {action} ({exc.kwargs.get('endpoint_url', '')}).",
            [cmd("sandbox status", "If you use the sandbox, check it is running"),
             cmd("sandbox start", "Start (or re-attach to) the sandbox"),
             Step("Otherwise check your network and AWS_ENDPOINT_URL")],
        )
    if isinstance(exc, bexc.WaiterError):
        return BackendError(
            f"Could not {action}: {_one_line((exc.last_response or {}).get('Error', {}).get('Message') or exc.reason)}.",
            [cmd(f"aws status {instance_id}" if instance_id else "resources list", "Check the current state"),
             Step("Run the command again with --wait once the state settles")],
        )
    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        msg = _one_line(error.get("Message", "")) or code
        if code in _INSTANCE_NOT_FOUND or code == "InvalidInstanceID.Malformed":
            return BackendError(
                f"Instance {instance_id or ''} was not found in this region.".replace("  ", " "),
                [cmd("resources list", "List the instances runctl can see"),
                 Step("Check the region: pass --region, or `config show`")],
            )
        if code in _THROTTLED:
            return BackendError(
                f"AWS kept throttling the request to {action}, even after retries.",
                [Step("Wait a minute and run the command again"),
                 cmd("config set max_attempts 20", "Or allow more retries")],
            )
        if code in _EXPIRED:
            return CredentialsError(
                f"AWS rejected the credentials while trying to {action} ({code}).",
                [Step("Refresh them: `aws sso login` or renew your session"), Step("Run the command again")],
            )
        if code.endswith("ServiceLinkedRoleCreationNotPermitted"):  # an account's first spot launch
            return BackendError(
                f"AWS refused to {action}: the account's first spot launch creates the role "
                "AWSServiceRoleForEC2Spot, and you may not create it (iam:CreateServiceLinkedRole).",
                [Step("Have an administrator run once: `aws iam create-service-linked-role "
                      "--aws-service-name spot.amazonaws.com`"),
                 Step("Or allow iam:CreateServiceLinkedRole for spot.amazonaws.com (README: 'Minimal IAM policy')"),
                 Step("Then run the command again (or create an on-demand instance: drop --spot)")],
            )
        if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
            return BackendError(
                f"Not allowed to {action}: {msg}",
                [Step("Ask for the permission named above (README: 'Minimal IAM policy')")],
            )
        if code == "IncorrectInstanceState":
            return BackendError(
                f"Cannot {action}: {msg}",
                [cmd(f"aws status {instance_id}", "Check its state"),
                 cmd(f"aws wait {instance_id}", "Wait until it settles, then retry")],
            )
        return BackendError(
            f"AWS refused to {action}: {code}: {msg}",
            [Step("Check the values you passed"), Step("Run again with --debug for the full trace")],
        )
    return None


def _one_line(text: object) -> str:
    """An AWS message as one line (some services answer with XML or several lines: an error message
    is one line, and a multi-line one must not turn a refusal into a crash)."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= 300 else line[:300] + "…"
