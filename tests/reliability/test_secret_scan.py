"""The scan conftest.py runs over everything the reliability tests captured (at the session's end) finds
each credential and presigned-URL part, and the sandbox's test secret only as a word."""

from __future__ import annotations

import pytest
from rel_helpers import FORBIDDEN, leaks_in


@pytest.mark.parametrize("needle", FORBIDDEN)
def test_each_forbidden_part_is_found_where_it_was_captured(needle):
    leaks = leaks_in([("clean", "epoch 1/2 loss=0.5\n"), ("cli aws monitor", f"…?{needle}abc&x=1\n")])
    assert len(leaks) == 1 and leaks[0].startswith(f"cli aws monitor: {needle!r}")


def test_the_test_secret_is_found_as_a_word_only():
    assert leaks_in([("log", "key testing here")]) == ["log: the test secret … 'key testing here'"]
    assert leaks_in([("log", "pytesting testing_x retesting")]) == []
