"""Argument types of the runctl grammar that check a value before anything is sent: a project name
or run id (they become folders and S3 key parts on the instance), a local path (no longer than the
system allows, else `stat` fails with an OSError), an ISO-8601 instant."""

from __future__ import annotations

import argparse
import math
import re
from datetime import datetime

from .models import name_problem


def project(text: str) -> str:
    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not a project name: it {problem}")
    return text


def run_id(text: str) -> str:
    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id: it {problem}")
    return text


def local_path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if len(text.encode(errors="surrogateescape")) > 4096 or any(
            len(part.encode(errors="surrogateescape")) > 255 for part in text.split("/")):
        raise argparse.ArgumentTypeError(f"{text[:60]!r}… is longer than a path can be "
                                         "(4,096 bytes, 255 per folder or file name)")
    return text


def instant(text: str) -> str:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 instant like 2026-11-23T09:00:00Z, "
                                         f"got {text[:60]!r}") from None
    return text


def text(value: str) -> str:
    """A name handed to AWS (a tag, a subnet, a key pair, a checkpoint): one printable line of at most
    255 characters (AWS's own limits are 255-256), so the mistake is said here, not as an AWS error."""
    if not value:
        raise argparse.ArgumentTypeError("expected a value, got an empty string")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise argparse.ArgumentTypeError(f"{value[:60]!r} holds control characters")
    if len(value) > 255:
        raise argparse.ArgumentTypeError(f"{value[:40]!r}… is {len(value):,} characters (at most 255)")
    return value


INSTANCE_TYPE_RE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")


def instance_type(value: str) -> str:
    """An EC2 instance type's shape (t3.micro, p4de.24xlarge, u-6tb1.56xlarge); whether the region
    offers it is EC2's answer (DescribeInstanceTypes, before launching)."""
    if len(value) > 64 or not INSTANCE_TYPE_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not an EC2 instance type (they look like "
                                         "t3.micro or g5.xlarge)")
    return value


def positive_number(text: str, expected: str) -> float:
    """A finite number > 0: `nan` and `inf` parse as floats, and a cap of nan is never reached."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} (it must be a finite number)")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def hours(text: str) -> float:
    return positive_number(text, "a number of hours")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def money(text: str) -> float:
    return positive_number(text.lstrip("$"), "an amount in dollars")


def duration(text: str) -> float:
    """'30m', '2h', '90s', '1h30m' or plain seconds → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0.0, ""
    for ch in text.strip().lower():
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"expected a duration like 30m or 2h, got {text!r}")
    if number:
        total += float(number)
    if total <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m or 2h, got {text!r}")
    return total
