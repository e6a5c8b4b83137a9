"""``runctl`` — the shell front end over the same grammar and API as ``%runctl``.

Exit codes: 0 success · 2 usage · 3 refused by a safety guard · 4 AWS/sandbox error ·
5 the training itself failed.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import dispatch, grammar
from .errors import SHELL_PREFIX, RunctlError


def _render(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "to_shell_text"):
        return value.to_shell_text()
    if type(value).__name__ == "DataFrame":
        from .costs import render_text

        if value.attrs.get("runctl_kind") == "resources":
            return render_text(value)
        return value.to_string(index=False)
    if hasattr(value, "summary"):
        return value.summary()
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own = grammar.split_script_args(argv)[0]
    debug = "--debug" in own
    try:
        command = grammar.parse(argv)
        if command.options.sandbox:
            from .api import attach_sandbox_for_shell

            attach_sandbox_for_shell()
        frontend = dispatch.Frontend(prefix=SHELL_PREFIX, echo=lambda s: print(s, flush=True))
        text = _render(dispatch.run(command, frontend))
        if text:
            print(text)
        return 0
    except grammar.HelpRequested as h:
        print(h.text.rstrip())
        return 0
    except RunctlError as err:
        if debug:
            traceback.print_exc()
        print(err.render(SHELL_PREFIX), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("Interrupted. Nothing on the instance was stopped; a training goes on "
              "(re-attach with `runctl aws monitor INSTANCE_ID --follow`).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
