"""``aiservice render --target T [--out DIR] [--check]``: registered through EXTRA_COMMANDS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def cmd_render(args: argparse.Namespace) -> int:
    from ..config.loader import settings_from_args
    from . import render, write

    files = render(settings_from_args(args), args.target)
    if args.check:
        return _check(files, Path(args.out or "."))
    if args.out:
        for path in write(files, args.out):
            print(path)
        return 0
    for relative, text in files.items():
        if len(files) > 1:
            print(f"# ===== {relative}")
        sys.stdout.write(text)
    return 0


def _check(files: dict[str, str], root: Path) -> int:
    """Exit 1 listing every committed file that differs from what render produces."""
    stale = [
        rel
        for rel, text in files.items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text
    ]
    for rel in stale:
        print(f"out of date: {root / rel}", file=sys.stderr)
    return 1 if stale else 0


def register(sub: Any) -> None:
    from . import TARGETS

    parser = sub.add_parser("render", help="render deploy manifests from the configuration")
    parser.add_argument("-c", "--config", help="YAML config file (default: ./aiservice.yaml)")
    parser.add_argument("-p", "--profile", help="profile overlay config/NAME.yaml")
    parser.add_argument("-t", "--target", required=True, choices=TARGETS.names())
    parser.add_argument("-o", "--out", help="write the files under this directory")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files under --out (or .) differ"
    )
    parser.set_defaults(func=cmd_render)
