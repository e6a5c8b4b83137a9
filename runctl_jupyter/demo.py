"""``python -m runctl_jupyter.demo NOTEBOOK --output-dir build``: execute a notebook headlessly.

Writes the executed notebook and an HTML copy into the output folder, then ends the sandbox the
notebook started (the notebooks run against the embedded sandbox, so no AWS account is needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def execute(notebook: Path, output_dir: Path, timeout: int = 600) -> tuple[Path, Path]:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = output_dir / notebook.name
    nbformat.write(nb, executed)
    html, _ = HTMLExporter().from_notebook_node(nb)
    html_path = executed.with_suffix(".html")
    html_path.write_text(html, encoding="utf-8")
    return executed, html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runctl_jupyter.demo", allow_abbrev=False)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("build"))
    args = parser.parse_args(argv)
    from .api import sandbox_stop

    try:
        for notebook in args.notebooks:
            executed, html = execute(notebook, args.output_dir)
            print(f"Executed {notebook} → {executed} and {html}")
    finally:
        sandbox_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
