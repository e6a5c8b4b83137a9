"""The ``storage`` commands of the runctl grammar (kept apart so grammar.py stays small).

``storage [list] [--project P]`` — runctl's S3 usage per project and kind, with $/month;
``storage prune [--project P] [--keep N] [--yes]`` — delete old code bundles, abort stale multipart
uploads (a dry run without ``--yes``).
"""

from __future__ import annotations

import argparse

from . import grammar_types

STORAGE_VERBS = ("list", "prune")


def _keep(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of bundles, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_storage_parser(top, parser_class, add_world_flags) -> None:
    st = top.add_parser("storage", help="runctl's S3 storage: size, $/month, prune old code bundles")
    verbs = st.add_subparsers(dest="verb", metavar="VERB", parser_class=parser_class)
    verbs.required = True
    for verb, text in (("list", "objects, bytes and $/month per project and kind (the default)"),
                       ("prune", "delete old code bundles, abort stale multipart uploads (dry run without --yes)")):
        p = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--project", type=grammar_types.project, help="only this runctl project (default: every project)")
        p.add_argument("--bucket", type=grammar_types.text, help="S3 bucket (default: the configured one)")
        if verb == "prune":
            p.add_argument("--keep", type=_keep, default=2, metavar="N",
                           help="code bundles to keep per project, newest first (default: 2)")
            p.add_argument("--yes", action="store_true", help="really delete (without it: show what would go)")
        add_world_flags(p)
