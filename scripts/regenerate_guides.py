"""Re-execute the stored guides (notebooks/*.ipynb) against a fresh sandbox and store them clean.

    python scripts/regenerate_guides.py [notebooks/quickstart.ipynb …]     (or: make guides)

What "clean" means, each checked here before a file is written:
- the outputs of a run against a fresh sandbox in build/nbval-sandbox (the folder nbval uses), with the
  sandbox's frozen clock: no execution timestamps from the machine's clock (``record_timing=False``);
- no absolute path of the machine that ran them: the repository's folder and the home folder become
  ``/path/to/runctl-jupyter`` and ``~`` (nbval's sanitizer, tests/nbval_sanitize.cfg, hides what varies);
- an error only in a cell tagged ``raises-exception`` (safety_tour shows refusals on purpose);
- the metadata JupyterLab would write when it opens the guide and starts its kernel (the kernelspec's
  display name, no stale widget state), so opening a guide does not mark it modified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GUIDES = sorted((REPO / "notebooks").glob("*.ipynb"))
SANDBOX = REPO / "build" / "nbval-sandbox"
REPO_PLACEHOLDER = "/path/to/runctl-jupyter"


def _kernelspec() -> dict[str, str]:
    """The kernelspec entry JupyterLab writes into a notebook once its kernel has started."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}


def _private_paths() -> list[tuple[str, str]]:
    """(path of this machine, what the stored guide says instead), longest first."""
    pairs = [(str(REPO), REPO_PLACEHOLDER), (str(REPO.resolve()), REPO_PLACEHOLDER)]
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.append((home, "~"))
    return sorted(set(pairs), key=lambda pair: -len(pair[0]))


def _scrub(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for path, shown in pairs:
            value = value.replace(path, shown)
        return value
    if isinstance(value, list):
        return [_scrub(v, pairs) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, pairs) for k, v in value.items()}
    return value


def clean(nb: Any) -> list[str]:
    """Make an executed notebook clean in place; the problems that cannot be cleaned."""
    import nbformat

    problems: list[str] = []
    pairs = _private_paths()
    nb.metadata.pop("widgets", None)  # no widget in the guides' outputs: stale state would be re-serialised
    nb.metadata["kernelspec"] = _kernelspec()
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)  # the machine's clock, not the sandbox's
        if cell.cell_type != "code":
            continue
        cell.outputs = [nbformat.from_dict(_scrub(dict(o), pairs)) for o in cell.outputs]
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors and "raises-exception" not in cell.metadata.get("tags", []):
            problems.append(f"cell {i} raised {errors[0].ename}: {errors[0].evalue.splitlines()[0]}")
    text = json.dumps(nb)
    for path, _ in pairs:
        if path in text:
            problems.append(f"a path of this machine is still in it: {path}")
    if "application/vnd.jupyter.widget-view+json" in text:
        problems.append("a widget output (its state would not survive): use a display instead")
    return problems


def regenerate(path: Path, timeout: int = 600) -> list[str]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    problems = clean(nb)
    if not problems:
        nbformat.write(nb, path)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("notebooks", nargs="*", type=Path, default=GUIDES)
    args = parser.parse_args(argv)
    shutil.rmtree(SANDBOX, ignore_errors=True)  # a fresh world: the guides start from nothing
    os.environ["RUNCTL_SANDBOX_DIR"] = str(SANDBOX)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    failed = 0
    for notebook in args.notebooks:
        problems = regenerate(notebook.resolve())
        print(f"{notebook}: " + ("stored" if not problems else "NOT stored: " + "; ".join(problems)))
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
