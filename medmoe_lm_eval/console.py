"""The rich console the CLI prints through, sized so its tables survive a log file."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console

LOG_WIDTH = 200


def cli_console(**kwargs: Any) -> Console:
    """A console for ``medmoe`` commands.

    Rich falls back to 80 columns when stdout is not a terminal, which squeezes the leaderboard's
    and the profile's many-column tables into ellipses in CI logs and ``> file`` redirects. There
    is no reader's window to fit then, so use a wide fixed width; ``COLUMNS`` still wins.
    """
    stream = kwargs.get("file") or (sys.stderr if kwargs.get("stderr") else sys.stdout)
    if "width" not in kwargs and "COLUMNS" not in os.environ and not stream.isatty():
        kwargs["width"] = LOG_WIDTH
    return Console(**kwargs)
