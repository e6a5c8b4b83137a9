"""``runctl`` — the shell front end over the same grammar and API as ``%runctl``.

Exit codes: 0 success · 2 usage · 3 refused by a safety guard · 4 AWS/sandbox error ·
5 the training itself failed · 130 interrupted (Ctrl-C; a training goes on) · 141 stdout closed
early (``runctl … | head -1``), as a process killed by SIGPIPE would report.

Streams: the command's result (an instance ID, a table, a run's summary, a log) goes to stdout;
progress and info lines (``[sandbox · us-east-1] Created …``) and errors go to stderr, so
``iid=$(runctl aws create t3.micro --wait)`` captures just the ID.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import dispatch, display, grammar
from .errors import SHELL_PREFIX, RunctlError

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _render(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "to_shell_text"):
        return value.to_shell_text()
    if type(value).__name__ == "DataFrame":
        return display.shell_text(value)
    if hasattr(value, "summary"):
        return value.summary()
    return str(value)


def _echo(line: str) -> None:
    """Progress and info lines: stderr, so that stdout carries only the command's result."""
    print(line, file=sys.stderr, flush=True)


def _detached(value: Any) -> bool:
    """A ``train --wait`` / ``monitor --follow`` that Ctrl-C detached from: the follower returns a
    TrainResult in state "detached" (the run goes on) instead of letting KeyboardInterrupt through."""
    from .api import TrainResult  # (a DataFrame may have a "state" column: check the type)

    return isinstance(value, TrainResult) and value.state == "detached"


def _run(argv: list[str]) -> int:
    own = grammar.split_script_args(argv)[0]
    debug = "--debug" in own
    try:
        command = grammar.parse(argv)
        if command.options.sandbox:
            from .api import attach_sandbox_for_shell

            attach_sandbox_for_shell()
        frontend = dispatch.Frontend(prefix=SHELL_PREFIX, echo=_echo)
        value = dispatch.run(command, frontend)
        if _detached(value):
            return EXIT_INTERRUPTED  # the follower already said how to re-attach or stop it
        text = _render(value)
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
        return EXIT_INTERRUPTED


def _silence(stream: Any) -> None:
    """Point a stream's file descriptor at /dev/null so that the interpreter's final flush of a
    closed pipe raises nothing (Python docs, "Note on SIGPIPE")."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows up here at the latest, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader went away (`runctl … | head -1`): stop quietly, like a process killed by SIGPIPE.
        # A training being followed goes on.
        _silence(sys.stdout)
        _silence(sys.stderr)  # `2>&1 | head -1`: stderr is the same closed pipe
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
