"""``medmoe profile show <results or profile file>``: the efficiency profile as tables."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the profile of a results_*.json or profile_*.json")
    show.add_argument("path", help="a results_*.json written by lm-eval, or a profile_*.json beside it")


def run(args: argparse.Namespace) -> int:
    from medmoe_lm_eval.profiling import ProfileError
    from medmoe_lm_eval.profiling.render import show_profile
    from medmoe_lm_eval.store.profiles import load_profile

    try:
        profile = load_profile(args.path)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    show_profile(profile)
    return 0
