"""The stored guides (notebooks/*.ipynb) as a new user gets them: clean, and readable untrusted.

What they look like in JupyterLab is checked in tests/browser/test_what_users_see_browser.py; here,
what can be read off the files (scripts/regenerate_guides.py writes them so).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _outputs_text(nb: dict) -> str:
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


@pytest.fixture(params=GUIDES, ids=lambda p: p.stem)
def guide(request: pytest.FixtureRequest) -> dict:
    return json.loads(request.param.read_text(encoding="utf-8"))


def test_no_path_of_the_machine_that_ran_them(guide: dict) -> None:
    text = json.dumps(guide)
    for private in {str(ROOT), str(ROOT.resolve()), str(Path.home())} - {"/"}:
        assert private not in text
    assert not re.search(r'"/(?:work|home|root|tmp|Users)/', _outputs_text(guide))


def test_dates_come_from_the_sandbox_clock_only(guide: dict) -> None:
    """No execution timestamps (the machine's clock); every date shown is the frozen sandbox's, or
    derived from it (launch times in the past, a presigned URL's expiry a week later)."""
    assert not [c for c in guide["cells"] if "execution" in c.get("metadata", {})]
    dates = set(re.findall(r"\b(20\d\d-\d\d-\d\d)", _outputs_text(guide)))
    assert dates <= {"2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-30"}, dates


def test_opening_one_rewrites_nothing(guide: dict) -> None:
    """What JupyterLab writes when it opens a notebook and starts its kernel is already there."""
    from jupyter_client.kernelspec import KernelSpecManager

    assert guide["nbformat"] == 4 and guide["nbformat_minor"] == 5
    assert all(c.get("id") for c in guide["cells"])
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert guide["metadata"]["kernelspec"] == {"display_name": spec.display_name, "language": "python",
                                               "name": "python3"}
    assert "widgets" not in guide["metadata"]  # widget state JupyterLab would re-serialise (5.0 → 5)
    assert "application/vnd.jupyter.widget-view+json" not in _outputs_text(guide)


def test_readable_untrusted_and_no_maths(guide: dict) -> None:
    """No <style> (JupyterLab drops it from untrusted outputs: the colours are inline); the HTML runctl
    shows is marked for MathJax to leave alone; markdown has no `$` outside code (`\\$` does not help:
    JupyterLab's markdown drops the backslash before MathJax sees the text)."""
    for cell in guide["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            assert "$" not in re.sub(r"`[^`]*`", "", source), source
        for out in cell.get("outputs", []):
            html = "".join(out.get("data", {}).get("text/html", ""))
            if "runctl" in html:  # (a plain DataFrame's selection keeps pandas' own HTML)
                assert "<style" not in html or "runctl-stale" in html  # (only a live display's own note)
                assert "tex2jax_ignore mathjax_ignore" in html, html[:200]
