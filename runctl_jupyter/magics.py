"""``%runctl`` — the IPython front end. Thin: split the line, parse, call the API, return the value.

IPython expands ``$var`` and ``{var}`` in the line before it reaches the magic (write ``$$`` and
``{{ }}`` for literal ``$`` and braces); the expanded line is split like a POSIX shell would.
Errors raise (so Run All stops) and render compactly through ``_render_traceback_``;
``%runctl --debug …`` shows the full traceback.

The ``%config RunctlMagics.<name>`` traits are generated from :class:`config.Settings`: one per
setting, checked on set by what ``config set`` checks, so a bad value is refused with runctl's
message and the value in effect stays as it was.
"""

from __future__ import annotations

import shlex
import types
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import TraitError, TraitType
from traitlets.config import Configurable

from . import config, dispatch, grammar
from .errors import NOTEBOOK_PREFIX, UsageError


class SettingTrait(TraitType[Any, Any]):
    """One runctl setting as a trait. ``None`` (the default) means this layer sets nothing; any other
    value must pass :func:`config.check_value`, else the assignment raises a :class:`TraitError`
    carrying runctl's message (what went wrong, then ``To resolve:`` and numbered steps)."""

    info_text = "a runctl setting (see %runctl config --help)"

    def validate(self, obj: Any, value: Any) -> Any:
        try:
            return config.check_value(str(self.name), value, config.MAGIC_SOURCE)
        except UsageError as exc:
            raise TraitError(exc.render(NOTEBOOK_PREFIX)) from exc


def _setting_traits(namespace: dict[str, Any]) -> None:
    namespace["__doc__"] = "The runctl settings as traits, generated from config.Settings."
    for f in config.setting_fields():
        namespace[f.name] = SettingTrait(None, allow_none=True, help=config.setting_help(f)).tag(config=True)


RunctlSettings = types.new_class("RunctlSettings", (Configurable,), exec_body=_setting_traits)


@magics_class
class RunctlMagics(Magics, RunctlSettings):  # type: ignore[misc, valid-type]
    """Settings here are the ``%config`` layer, e.g. ``%config RunctlMagics.region = "eu-west-1"``;
    ``%config RunctlMagics`` lists them, ``%config RunctlMagics.region = None`` unsets one."""

    def magic_config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in config.SETTING_NAMES if getattr(self, name) is not None}

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
