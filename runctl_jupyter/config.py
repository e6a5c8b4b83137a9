"""Settings and where each value came from.

Precedence (highest first): command-line flag > ``RUNCTL_<NAME>`` environment variable >
``%config RunctlMagics.<name>`` / project file (``[tool.runctl]`` in the project's pyproject.toml,
or ``.runctl.toml``) > user file (``~/.config/runctl/config.toml`` or ``$RUNCTL_CONFIG_FILE``) >
default. When runctl sets no region/profile, boto3's own chain (AWS_PROFILE, AWS_REGION, SSO…) applies.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import Step, UsageError, cmd
from .models import name_problem


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def _retry_mode(text: str) -> str:
    if text not in ("standard", "adaptive", "legacy"):
        raise ValueError("must be standard, adaptive or legacy")
    return text


def _guardian_upload(text: str) -> str:
    if text not in ("presigned", "instance-role"):
        raise ValueError("must be presigned or instance-role")
    return text


def _bucket(text: str) -> str:
    # Checked up front: a train whose code is unchanged never reaches S3, so it would not notice.
    if not (3 <= len(text) <= 63 and all(c.islower() or c.isdigit() or c in ".-" for c in text)
            and text[0].isalnum() and text[-1].isalnum()):
        raise ValueError("an S3 bucket name is 3-63 lowercase letters, digits, dots or hyphens")
    return text


def _login_user(text: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", text):
        raise ValueError("must be a Linux user name (lowercase letters, digits, _ or -, at most 32)")
    return text


def _name(text: str) -> str:
    problem = name_problem(text)
    if problem:
        raise ValueError(problem)
    return text


@dataclass
class Settings:
    region: str | None = field(default=None, metadata={"help": "AWS region (else boto3's chain)"})
    profile: str | None = field(default=None, metadata={"help": "AWS profile (else boto3's chain)"})
    bucket: str | None = field(default=None, metadata={"help": "S3 bucket for code bundles and checkpoint copies", "parse": _bucket})
    project: str | None = field(default=None, metadata={"help": "project name (default: the project folder's name)", "parse": _name})
    remote_user: str = field(default="ec2-user", metadata={"help": "login user on instances (ROOT is its home); unset: the image's own (ec2-user, ubuntu…)",
                                                        "parse": _login_user})
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


def setting_fields():
    return [f for f in fields(Settings) if f.name != "sources"]


SETTING_NAMES = tuple(f.name for f in setting_fields())


def _parser(name: str) -> Callable[[str], Any]:
    f = next(f for f in setting_fields() if f.name == name)
    return f.metadata.get("parse", str)


def parse_value(name: str, raw: Any, source: str) -> Any:
    if name not in SETTING_NAMES:
        raise UsageError(
            f"Unknown setting '{name}' (from {source}).",
            [cmd("config show", "See the settings and their current values"),
             Step("Valid names: " + ", ".join(SETTING_NAMES))],
        )
    if raw is None:
        return None
    try:
        return _parser(name)(str(raw))
    except ValueError as exc:
        raise UsageError(
            f"Setting {name}={raw!r} (from {source}) is invalid: {exc}.",
            [cmd(f"config set {name} VALUE", "Set a valid value"), cmd("config show", "Check where it came from")],
        ) from exc


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
            return _read_toml(dotfile), str(dotfile)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("runctl")
            if table is not None:
                return table, f"{pyproject} [tool.runctl]"
            return None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        what = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"is not valid TOML: {exc}"
        raise UsageError(f"{path} {what}.", [
            Step(f"Fix it in an editor, or move it aside: mv {shlex.quote(str(path))} "
                 f"{shlex.quote(str(path))}.broken"),
            cmd("config set NAME VALUE", "Or set a value: runctl keeps the broken file beside a fresh one")]) from exc


def _user_values_for_rewrite(path: Path) -> tuple[dict[str, Any], Path | None]:
    """The user file's values before ``config set`` rewrites it; a file runctl cannot read (not TOML,
    not UTF-8) is kept as ``NAME.broken-N`` (returned) and the rewrite starts afresh."""
    if not path.is_file():
        return {}, None
    try:
        return _read_toml(path), None
    except UsageError:
        n = 1
        while path.with_name(f"{path.name}.broken-{n}").exists():
            n += 1
        kept = path.with_name(f"{path.name}.broken-{n}")
        path.replace(kept)
        return {}, kept


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
        layers.append(("%config RunctlMagics", magic))
    env_layer = {n: environ[f"RUNCTL_{n.upper()}"] for n in SETTING_NAMES if f"RUNCTL_{n.upper()}" in environ}
    layers.append(("environment", {n: v for n, v in env_layer.items()}))
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
    """``config set``: validate, then write the value into the user file (atomically). Returns the file
    and, when the old one could not be read, where it was kept."""
    parse_value(name, raw, "config set")
    if name == "region":  # checked when written, not first when some later command uses it
        from .grammar import check_region

        check_region(raw, flag="--region")
    path = path or user_config_path()
    current, kept = _user_values_for_rewrite(path)
    current[name] = raw
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k} = {_toml_string(str(v))}\n" for k, v in sorted(current.items())), encoding="utf-8")
    tmp.replace(path)
    return path, kept


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
