"""``%runctl`` — the IPython front end. Thin: split the line, parse, call the API, return the value.

IPython expands ``$var`` and ``{var}`` in the line before it reaches the magic (write ``$$`` and
``{{ }}`` for literal ``$`` and braces); the expanded line is split like a POSIX shell would.
Errors raise (so Run All stops) and render compactly through ``_render_traceback_``;
``%runctl --debug …`` shows the full traceback.
"""

from __future__ import annotations

import shlex

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import CFloat, CInt, Unicode

from . import dispatch, grammar
from .errors import NOTEBOOK_PREFIX, UsageError


@magics_class
class RunctlMagics(Magics):
    """Settings here are the ``%config`` layer, e.g. ``%config RunctlMagics.region = "eu-west-1"``."""

    region = Unicode(None, allow_none=True, help="AWS region").tag(config=True)
    profile = Unicode(None, allow_none=True, help="AWS profile").tag(config=True)
    bucket = Unicode(None, allow_none=True, help="S3 bucket for code bundles and checkpoints").tag(config=True)
    project = Unicode(None, allow_none=True, help="project name").tag(config=True)
    warn_uptime_hours = CFloat(None, allow_none=True, help="long-running warning threshold (h)").tag(config=True)
    warn_accrued_usd = CFloat(None, allow_none=True, help="accrued cost warning threshold ($)").tag(config=True)
    warn_hourly_usd = CFloat(None, allow_none=True, help="hourly price warning threshold ($/hr)").tag(config=True)
    max_attempts = CInt(None, allow_none=True, help="boto3 attempts per call").tag(config=True)

    _SETTINGS = ("region", "profile", "bucket", "project", "warn_uptime_hours", "warn_accrued_usd",
                 "warn_hourly_usd", "max_attempts")

    def magic_config(self) -> dict:
        return {name: getattr(self, name) for name in self._SETTINGS if getattr(self, name) is not None}

    @line_cell_magic
    def runctl(self, line: str, cell: str | None = None):
        """Run a runctl command. ``%runctl --help`` lists them; ``%runctl aws train --help`` etc.

        As a cell magic, the cell's lines are the training script's arguments:
        ``%%runctl aws train $iid train.py`` with one argument per line below.
        """
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"Could not split the command line: {exc}.",
                             ["Close the quote, or write $$ / {{ }} for literal $ and braces"]) from exc
        if cell is not None:
            if "--" not in words:
                words.append("--")
            words += [arg for arg in cell.splitlines() if arg.strip()]
        debug = "--debug" in grammar.split_script_args(words)[0]
        try:
            command = grammar.parse(words)
            frontend = dispatch.Frontend(prefix=NOTEBOOK_PREFIX, echo=print, notebook=True,
                                         magic_config=self.magic_config())
            return dispatch.run(command, frontend)
        except grammar.HelpRequested as h:
            print(h.text.rstrip().replace("usage: runctl", "usage: %runctl"))
            return None
        except Exception as exc:
            if debug and hasattr(exc, "_render_traceback_"):
                # --debug: show the real traceback instead of the compact rendering.
                raise RuntimeError(str(exc)) from exc
            raise
