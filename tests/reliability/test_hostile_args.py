"""Hostile argument vectors reach the training script byte-exact, and nothing they say is executed.

``training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0", "--", *hostile])``; the
example script prints ``args: <json of sys.argv[1:]>``. Every vector carries canary commands
(``$(touch …)``, backticks, ``;``, newlines, ``&&``, ``|`` …) aimed at a canary folder: it must stay
empty. CI runs ~20 examples; ``RUNCTL_SOAK_EXAMPLES=1000`` (``make soak``) runs the soak variant with
that many (one instance, synced once, then ``sync_code=False``).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import record

from runctl_jupyter import api, training

CI_EXAMPLES = 20
SOAK_EXAMPLES = int(os.environ.get("RUNCTL_SOAK_EXAMPLES") or 1000)
PREFIX = ["--epochs", "1", "--sleep", "0", "--"]


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return tmp_path_factory.mktemp("canary")


@pytest.fixture(scope="module")
def warm_instance(sandbox, script):
    """One instance with the project synced once (later examples use sync_code=False)."""
    ctx = api.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="relproj").instance_id
    launch = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0"])
    training.follow_run(ctx, launch, lambda _t: None)
    yield iid
    api.terminate(ctx, iid, force=True)


def _attacks(c: str) -> list[str]:
    return [f"$(touch {c}/dollar)", f"`touch {c}/backtick`", f"; touch {c}/semicolon", f"\ntouch {c}/newline",
            f"&& touch {c}/and", f"| touch {c}/pipe", f"' ; touch {c}/squote ; '", f'" ; touch {c}/dquote ; "',
            f"$(touch {c}/nested-$(echo x))", f"\r\ntouch {c}/crlf", f"x'$(touch {c}/mixed)'\"`touch {c}/mixed2`\"",
            f"--output=$(touch {c}/flag)", f"-e;touch {c}/dash"]


SPECIALS = ["", " ", "  leading and trailing  ", "\t", "\n", "\\", "\\\\n", "'", '"', "''", '""', "*", "?", "~",
            "$HOME", "${IFS}", "$((1+1))", "%s%n%x", "-", "--", "---", "--resume", "-e", "-n", "--help",
            "ünïcødé ✓", "日本語", "🚀💥", "\u2028\u2029", "\x7f", "\x1b[31mred", "a=b", "@runctl started=1",
            "NUL-free\x01\x02"]

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)


def vectors(canary_dir: str):
    atom = st.one_of(st.sampled_from(_attacks(canary_dir)), st.sampled_from(SPECIALS), TEXT)
    joined = st.lists(atom, min_size=1, max_size=3).map("".join)
    return st.lists(st.one_of(atom, joined), min_size=0, max_size=8)


def _args_line(log: str) -> list[str]:
    line = next(line for line in log.split("\n") if line.startswith("args: "))
    return json.loads(line[len("args: "):])


def check_vector(iid: str, script, hostile: list[str], canary_dir) -> None:
    ctx = api.context()
    launch = training.start_training(ctx, iid, script, [*PREFIX, *hostile], sync_code=False)
    pieces: list[str] = []
    result = training.follow_run(ctx, launch, pieces.append)
    log = "".join(pieces)
    record(f"hostile run {launch.run_id}", log)
    assert result.exit_code == 0, log[-2000:]
    assert _args_line(log) == ["--epochs", "1", "--sleep", "0", "--", *hostile]
    assert sorted(os.listdir(canary_dir)) == [], "an argument was executed"


def test_fixed_catalogue_arrives_byte_exact(warm_instance, script, canary):
    check_vector(warm_instance, script, _attacks(str(canary)) + SPECIALS, canary)


def _property(n: int):
    def test(warm_instance, script, canary):
        @settings(max_examples=n, deadline=None, derandomize=n == CI_EXAMPLES, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
        @given(hostile=vectors(str(canary)))
        def inner(hostile):
            check_vector(warm_instance, script, hostile, canary)

        inner()
    return test


test_hypothesis_vectors_arrive_byte_exact = _property(CI_EXAMPLES)
test_hypothesis_vectors_soak = pytest.mark.soak(_property(SOAK_EXAMPLES))
