"""Settings and where each value came from.

Precedence (highest first): command-line flag > ``RUNCTL_<NAME>`` environment variable >
``%config RunctlMagics.<name>`` / project file (``[tool.runctl]`` in the project's pyproject.toml,
or ``.runctl.toml``) > user file (``~/.config/runctl/config.toml`` or ``$RUNCTL_CONFIG_FILE``) >
default. When runctl sets no region/profile, boto3's own chain (AWS_PROFILE, AWS_REGION, SSO…) applies.

:class:`Settings` is the one schema: each field's ``parse`` checks a value from any source, the
``%config RunctlMagics`` traits are generated from it (magics.py) and ``config --help`` lists it.
A value being *written* (``config set``, ``%config``) passes :func:`check_value` — the parser, and for
``region`` a region botocore knows — so what breaks the next command is refused when it is set.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import textwrap
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import Hint, Step, UsageError, cmd
from .models import name_problem

MAGIC_SOURCE = "%config RunctlMagics"
SET_SOURCE = "config set"


# Each parser's docstring says what it takes (``config --help`` shows it); a ValueError says why not.
def _positive_float(text: str) -> float:
    """a number greater than 0"""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number greater than 0") from None
    if not math.isfinite(value) or value <= 0:  # nan and inf parse, and would break every comparison
        raise ValueError("must be a finite number greater than 0")
    return value


def _positive_int(text: str) -> int:
    """a whole number greater than 0"""
    try:
        value = int(text)
    except ValueError:
        raise ValueError("must be a whole number greater than 0") from None
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def _text(text: str) -> str:
    """a name (no control characters, no space at either end)"""
    if not text.strip():
        raise ValueError("must not be empty")
    hidden = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if hidden is not None:
        raise ValueError(f"must not hold control or invisible characters (it holds {hidden!r})")
    if text != text.strip():
        raise ValueError("must not start or end with a space")
    return text


def _region(text: str) -> str:
    """an AWS region name such as eu-west-1"""
    return _text(text)


def _retry_mode(text: str) -> str:
    """standard, adaptive or legacy"""
    if text not in ("standard", "adaptive", "legacy"):
        raise ValueError("must be standard, adaptive or legacy")
    return text


def _guardian_upload(text: str) -> str:
    """presigned or instance-role"""
    if text not in ("presigned", "instance-role"):
        raise ValueError("must be presigned or instance-role")
    return text


def _bucket(text: str) -> str:
    """an S3 bucket name"""
    # Checked up front: a train whose code is unchanged never reaches S3, so it would not notice.
    if not (3 <= len(text) <= 63 and all(c.islower() or c.isdigit() or c in ".-" for c in text)
            and text[0].isalnum() and text[-1].isalnum()):
        raise ValueError("an S3 bucket name is 3-63 lowercase letters, digits, dots or hyphens")
    return text


def _login_user(text: str) -> str:
    """a Linux user name"""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", text):
        raise ValueError("must be a Linux user name (lowercase letters, digits, _ or -, at most 32)")
    return text


def _image(text: str) -> str:
    """an AMI ID (ami-…) or the name of an SSM parameter that holds one (/aws/service/… or your own /…)"""
    if text.startswith("resolve:ssm:"):
        raise ValueError(f"write the parameter's name alone, without resolve:ssm: ({text.removeprefix('resolve:ssm:')})")
    if re.fullmatch(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})", text) or re.fullmatch(r"/[A-Za-z0-9_.\-/]{1,2047}", text):
        return text
    raise ValueError("must be an AMI ID (ami- and 8 or 17 hex digits) or an SSM parameter name starting with /")


PYTHON_NAME_RE = re.compile(r"(python|pypy)[0-9.]*")


def _interpreter(text: str) -> str:
    """an absolute path on the instance (e.g. /opt/pytorch/bin/python) or a name like python3.12"""
    if text.startswith("/"):
        if len(text) > 1024 or any(c.isspace() or unicodedata.category(c).startswith("C") for c in text):
            raise ValueError("must be a path without spaces or control characters")
        return text
    if not PYTHON_NAME_RE.fullmatch(text):
        raise ValueError("must be an absolute path on the instance (e.g. /opt/pytorch/bin/python) or a name "
                         "like python3.12")
    return text


def _name(text: str) -> str:
    """letters, digits, '.', '_' or '-'"""
    problem = name_problem(text)
    if problem:
        raise ValueError(problem)
    return text


@dataclass
class Settings:
    region: str | None = field(default=None, metadata={"help": "AWS region", "parse": _region,
                                                       "default": "boto3's chain (AWS_REGION, the profile's)"})
    profile: str | None = field(default=None, metadata={"help": "AWS profile", "parse": _text,
                                                        "default": "boto3's chain (AWS_PROFILE…)"})
    bucket: str | None = field(default=None, metadata={"help": "S3 bucket for code bundles and checkpoint copies", "parse": _bucket,
                                                       "default": "none (sandbox: runctl-sandbox)"})
    project: str | None = field(default=None, metadata={"help": "project name", "parse": _name,
                                                        "default": "the project folder's name"})
    default_image: str | None = field(default=None, metadata={
        "help": "image every create launches unless --ami names one", "parse": _image,
        "default": "the instance type's own: the Deep Learning AMI with PyTorch for NVIDIA GPU types, else "
                   "Amazon Linux 2023 of the type's architecture"})
    python: str | None = field(default=None, metadata={
        "help": "Python on instances that runs trainings (and builds the project venv)", "parse": _interpreter,
        "default": "the image's PyTorch environment (/opt/pytorch/bin/python on a Deep Learning AMI), else python3"})
    remote_user: str = field(default="ec2-user", metadata={"help": "login user on instances (ROOT is its home)",
                                                        "parse": _login_user,
                                                        "default": "the image's own (ec2-user, ubuntu…)"})
    warn_uptime_hours: float = field(default=24.0, metadata={"help": "warn when a running instance is up longer (hours)", "parse": _positive_float})
    warn_accrued_usd: float = field(default=10.0, metadata={"help": "warn when accrued cost exceeds ($)", "parse": _positive_float})
    warn_hourly_usd: float = field(default=5.0, metadata={"help": "warn when the hourly price exceeds ($/hr)", "parse": _positive_float})
    retry_mode: str = field(default="adaptive", metadata={"help": "boto3 retry mode", "parse": _retry_mode})
    max_attempts: int = field(default=12, metadata={"help": "boto3 attempts per call (throttling, 5xx)", "parse": _positive_int})
    stop_wait_seconds: int = field(default=60, metadata={"help": "how long stop waits for a training to checkpoint", "parse": _positive_int})
    sync_max_mb: float = field(default=500.0, metadata={"help": "largest code bundle train sends (MB); more is refused", "parse": _positive_float})
    guardian_upload: str = field(default="presigned", metadata={
        "help": "how the guardian uploads: presigned (URLs made at train time) or instance-role (the "
                "instance's role may s3:PutObject on the bucket; needs the AWS CLI on the image)",
        "parse": _guardian_upload})
    price_cache_ttl_hours: float = field(default=24.0, metadata={"help": "how long Pricing API answers are cached", "parse": _positive_float})
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def explain(self) -> list[tuple[str, Any, str]]:
        return [(f.name, getattr(self, f.name), self.sources.get(f.name, "default")) for f in setting_fields()]


def setting_fields() -> list[Field[Any]]:
    return [f for f in fields(Settings) if f.name != "sources"]


SETTING_NAMES = tuple(f.name for f in setting_fields())


def _parser(name: str) -> Callable[[str], Any]:
    f = next(f for f in setting_fields() if f.name == name)
    return f.metadata.get("parse", str)


def setting_help(f: Field[Any]) -> str:
    """One setting's help from the schema: what it is, what it takes, its default."""
    default = f.metadata.get("default", f.default)
    return f"{f.metadata['help']}. Takes {f.metadata['parse'].__doc__}; default: {default}."


def settings_help(width: int = 78) -> str:
    """Every setting with its help (``config --help``), wrapped to ``width`` columns."""
    lines = textwrap.wrap("Settings: `config set NAME VALUE` writes one into the user file, `config unset "
                          "NAME` removes it; in a notebook `%config RunctlMagics.NAME = VALUE` sets one for "
                          "the session. `config show` says which value is in effect and where it comes from.",
                          width, break_on_hyphens=False)
    column = max(len(name) for name in SETTING_NAMES) + 4
    for f in setting_fields():
        lines += textwrap.wrap(setting_help(f), width, initial_indent=f"  {f.name:<{column - 2}}",
                               subsequent_indent=" " * column, break_on_hyphens=False)
    return "\n".join(lines)


def _fix_steps(name: str, source: str) -> list[Step]:
    """How to give ``name`` a valid value where ``source`` set it, or drop it there."""
    if source == MAGIC_SOURCE:
        return [Step(f"Set a valid value: %config RunctlMagics.{name} = VALUE"),
                Step(f"Or leave it to the other sources: %config RunctlMagics.{name} = None"),
                cmd("config --help", "See every setting and what it takes")]
    if source.startswith("user file"):
        return [cmd(f"config set {name} VALUE", "Set a valid value"),
                cmd(f"config unset {name}", "Or remove it from the user file (the default applies)")]
    if source.startswith("project file"):
        return [Step(f"Fix {name} in the {source}"), cmd("config --help", "See every setting and what it takes")]
    if source.startswith("RUNCTL_"):
        return [Step(f"Fix the environment variable {source}, or unset it"),
                cmd("config --help", "See every setting and what it takes")]
    fix = cmd(f"config set {name} VALUE", "Give a valid value") if source == SET_SOURCE else \
        Step(f"Give a valid --{name.replace('_', '-')}")
    return [fix, cmd("config --help", "See every setting and what it takes")]


def _unknown(name: str, source: str) -> UsageError:
    steps: list[Step] = []
    close = difflib.get_close_matches(name.lower(), SETTING_NAMES, n=1)
    if close:
        steps.append(Step(f"Did you mean {close[0]}?"))
    if source.startswith("user file"):
        steps.append(cmd(f"config unset {shlex.quote(name)}", "Remove it from the user file"))
    elif source.startswith("project file"):
        steps.append(Step(f"Remove or rename it in the {source}"))
    steps.append(Step("Valid names: " + ", ".join(SETTING_NAMES)))
    return UsageError(f"Unknown setting {name!r}{_origin(source)}.", steps)


def _origin(source: str) -> str:
    """`` (from SOURCE)`` for a message, but not for the command being run (``config set``…)."""
    return "" if source.startswith("config ") else f" (from {source})"


def parse_value(name: str, raw: Any, source: str) -> Any:
    """``raw`` (from ``source``) as the setting's value; a :class:`UsageError` that says how to fix it
    where it came from when the name is unknown or the value invalid. ``None`` stays ``None``."""
    if name not in SETTING_NAMES:
        raise _unknown(name, source)
    if raw is None:
        return None
    try:
        return _parser(name)(str(raw))
    except ValueError as exc:
        raise UsageError(f"Setting {name}={raw!r}{_origin(source)} is invalid: {exc}.",
                         _fix_steps(name, source)) from exc


def check_value(name: str, raw: Any, source: str = SET_SOURCE) -> Any:
    """What a value being *written* must pass (``config set``, ``%config``): its parser, and for
    ``region`` a region botocore knows — refused now, not by whichever command next uses it."""
    value = parse_value(name, raw, source)
    if name == "region" and value is not None:
        from .grammar import check_region

        try:
            check_region(value, ["config", "set", "region", value])
        except UsageError as exc:  # its steps, less listing instances, and in %config form for %config
            steps = [s for s in exc.steps if not (s.command or "").startswith("resources list")]
            raise UsageError(exc.message, [_as_magic_step(s) for s in steps] if source == MAGIC_SOURCE
                             else steps) from None
    return value


def _as_magic_step(step: Step) -> Step:
    """``config set NAME VALUE`` (a runctl command) → the same fix written as a ``%config`` line."""
    if step.command and step.command.startswith("config set "):
        name, value = shlex.split(step.command)[2:4]
        return Step(f"{step.text}: %config RunctlMagics.{name} = {value!r}")
    return step


def user_config_path() -> Path:
    explicit = os.environ.get("RUNCTL_CONFIG_FILE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runctl" / "config.toml"


def project_config(start: Path) -> tuple[dict[str, Any], str] | None:
    """``.runctl.toml`` or ``[tool.runctl]`` of the nearest pyproject.toml above ``start``."""
    for folder in [start, *start.parents]:
        dotfile = folder / ".runctl.toml"
        if dotfile.is_file():
            return _read_toml(dotfile, user_file=False), str(dotfile)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject, user_file=False).get("tool", {}).get("runctl")
            if table is not None:
                return table, f"{pyproject} [tool.runctl]"
            return None
    return None


def _read_toml(path: Path, user_file: bool = True) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        what = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"is not valid TOML: {exc}"
        steps = [Step(f"Fix it in an editor, or move it aside: mv {shlex.quote(str(path))} "
                      f"{shlex.quote(str(path))}.broken")]
        if user_file:  # `config set` / `config unset` rewrite the user file (never a project's)
            steps.append(cmd("config set NAME VALUE", "Or set a value: runctl keeps the broken file beside a fresh one"))
        raise UsageError(f"{path} {what}.", steps) from exc


def _readable_values(path: Path) -> dict[str, Any] | None:
    """The user file's values as written (none checked: a bad one must not stop its own repair);
    ``{}`` when there is no file, ``None`` when it cannot be read (not TOML, not UTF-8)."""
    if not path.is_file():
        return {}
    try:
        return _read_toml(path)
    except UsageError:
        return None


def _keep_aside(path: Path) -> Path:
    """Move an unreadable user file to ``NAME.broken-N`` (the first N free) and return where."""
    n = 1
    while path.with_name(f"{path.name}.broken-{n}").exists():
        n += 1
    kept = path.with_name(f"{path.name}.broken-{n}")
    path.replace(kept)
    return kept


def _write_user_file(path: Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` as TOML strings, atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{_toml_key(k)} = {_toml_string(str(v))}\n" for k, v in sorted(values.items())),
                   encoding="utf-8")
    tmp.replace(path)


def resolve(flags: Mapping[str, Any] | None = None, magic: Mapping[str, Any] | None = None,
            cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Merge every source into one Settings, remembering where each value came from."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any]]] = []
    user_file = user_config_path()
    if user_file.is_file():
        layers.append((f"user file {user_file}", _read_toml(user_file)))
    found = project_config(cwd or Path.cwd())
    if found:
        layers.append((f"project file {found[1]}", found[0]))
    if magic:
        layers.append((MAGIC_SOURCE, magic))
    env_layer = {n: environ[f"RUNCTL_{n.upper()}"] for n in SETTING_NAMES if f"RUNCTL_{n.upper()}" in environ}
    layers.append(("environment", env_layer))
    if flags:
        layers.append(("command line", {k: v for k, v in flags.items() if v is not None}))
    settings = Settings()
    for source, values in layers:
        for name, raw in values.items():
            value = parse_value(name, raw, source if source != "environment" else f"RUNCTL_{name.upper()}")
            setattr(settings, name, value)
            settings.sources[name] = source if source != "environment" else f"env RUNCTL_{name.upper()}"
    return settings


def set_user_value(name: str, raw: str, path: Path | None = None) -> tuple[Path, Path | None]:
    """``config set``: check the value (:func:`check_value`), then write it into the user file. Returns
    the file and, when the old one could not be read, where it was kept."""
    check_value(name, raw, SET_SOURCE)
    path = path or user_config_path()
    current = _readable_values(path)
    kept = _keep_aside(path) if current is None else None
    _write_user_file(path, {**(current or {}), name: raw})
    return path, kept


@dataclass(frozen=True)
class Unset:
    """What ``config unset NAME`` did to the user file."""

    name: str
    path: Path
    previous: Any = None        # the value removed; None when the file did not hold the name
    kept: Path | None = None    # where an unreadable old file was kept (a fresh, empty one replaced it)

    def messages(self) -> list[str]:
        """What a front end echoes (a :class:`Hint` shows its command with the front end's prefix)."""
        said: list[str] = []
        if self.kept is not None:
            said.append(f"{self.path} could not be read: it is kept as {self.kept}, and a fresh, empty file was started")
        if self.previous is not None:
            said.append(f"Removed {self.name} = {self.previous!r} from {self.path}")
        elif self.kept is None:
            said.append(f"{self.name} was not set in {self.path}: nothing to remove")
        if self.name in SETTING_NAMES:
            said.append(Hint(f"{self.name} now comes from the next source down (else its default); see `{{}}`",
                             "config show"))
        return said


def unset_user_value(name: str, path: Path | None = None) -> Unset:
    """``config unset``: remove ``name`` from the user file, so the next source down (in the end the
    default) applies. The file's other values are kept as written, valid or not; a name runctl does not
    know is removed too when the file holds it (a typo written by hand); an unreadable file is kept as
    ``NAME.broken-N`` and a fresh, empty one started, as ``config set`` does."""
    path = path or user_config_path()
    current = _readable_values(path)
    if name not in SETTING_NAMES and (current is None or name not in current):
        raise _unknown(name, "config unset")
    kept = _keep_aside(path) if current is None else None
    current = current or {}
    previous = current.pop(name, None)
    if previous is not None or kept is not None:
        _write_user_file(path, current)
    return Unset(name, path, previous, kept)


def _toml_key(key: str) -> str:
    """A bare TOML key when it may be one, else a quoted one (a hand-written ``"my key"`` survives)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(value: str) -> str:
    """A TOML basic string: backslash, quote and every control character escaped (tomllib reads it back)."""
    out = []
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
