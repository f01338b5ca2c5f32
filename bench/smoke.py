"""``--smoke`` for every runnable bench script: the same code path at a tiny size.

``make bench-smoke`` runs ``python bench/X.py --smoke`` for each runnable
script and checks that it exits 0, so a benchmark that no longer runs is
seen in CI the day it breaks. A smoke run measures nothing: its figures are
printed but meaningless, and a missed target does not fail it.
"""

from __future__ import annotations

import argparse


def parse_with_smoke(parser: argparse.ArgumentParser, argv: list[str] | None = None, **tiny) -> argparse.Namespace:
    """Parse ``argv``; with ``--smoke`` every option named in ``tiny`` takes its tiny value."""
    parser.add_argument("--smoke", action="store_true",
                        help="run at a tiny size in a few seconds, to check the script still works "
                             f"({', '.join(f'--{k.replace(chr(95), chr(45))} {v}' for k, v in tiny.items())})")
    args = parser.parse_args(argv)
    if args.smoke:
        for name, value in tiny.items():
            setattr(args, name, value)
    return args
