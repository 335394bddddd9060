"""Every ``MEDMOE_*`` environment variable, each named once with what it means.

Modules read a variable through its :class:`EnvSetting` here, never by spelling the name, so a
newcomer finds them all in one list (:data:`ALL`) and an error message names the variable the
code reads. Values are read when asked for, not at import: tests and the CLI set them at run time.
The meaning of each value (a folder, a choice, a flag) is checked where it is used, since only
that module knows what a wrong value costs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable: its name and what it changes."""

    name: str
    meaning: str

    def value(self) -> str | None:
        """The variable as this process sees it now; ``None`` when unset or empty (empty = unset)."""
        return os.environ.get(self.name) or None

    def text(self) -> str:
        """The value with surrounding blanks removed, ``""`` when unset."""
        return (self.value() or "").strip()


DATA = EnvSetting(
    "MEDMOE_DATA",
    "where the project's tasks read their rows when --metadata names no source: 'hub' (default), 'bundled' or a folder of <benchmark>.jsonl files",
)
CACHE = EnvSetting("MEDMOE_CACHE", "folder for built demo models, routers and quantized copies (default $XDG_CACHE_HOME/medmoe)")
DEBUG = EnvSetting("MEDMOE_DEBUG", "any non-empty value: `medmoe quantize` prints the whole traceback of a failure")
GGUF_CONVERTER = EnvSetting("MEDMOE_GGUF_CONVERTER", "llama.cpp's convert_hf_to_gguf.py, used for architectures the built-in GGUF writer does not handle")
LOG_DIR = EnvSetting("MEDMOE_LOG_DIR", "folder for routing logs and profiles when model_args names no log_dir (default: beside lm-eval's results)")
RESULTS = EnvSetting("MEDMOE_RESULTS", "the results folder the leaderboard app serves (default results/)")
SANDBOX = EnvSetting("MEDMOE_SANDBOX", "kernel isolation for generated programs: auto (default), bwrap, unshare or off")
USE_CASES = EnvSetting(
    "MEDMOE_USE_CASES", "the use-case YAML the board and `medmoe rank` read (default: the use_cases.yaml shipped in medmoe_lm_eval/analysis)"
)
CONSULT_TRUST = EnvSetting(
    "MEDMOE_CONSULT_TRUST", "comma-separated candidates whose recorded adapter the board's Consult page may run without the YAML you evaluated"
)

#: every variable medmoe reads, in the order the README lists them
ALL: tuple[EnvSetting, ...] = (DATA, CACHE, DEBUG, GGUF_CONVERTER, LOG_DIR, RESULTS, SANDBOX, USE_CASES, CONSULT_TRUST)
