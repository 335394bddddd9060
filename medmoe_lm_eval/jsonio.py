"""Writing JSON so that a crash or a second writer never costs an earlier file.

Results, profiles and routing summaries are the record a user acts on: a half-written file would
read as a corrupt run and a silent overwrite would lose one. Every writer in the package goes
through :func:`write_json_exclusive`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_json_exclusive(path: str | os.PathLike[str], payload: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically; refuse to replace an existing file.

    The text goes to a temporary file in the same folder, is flushed to disk, and is then
    hard-linked to the final name: the link fails if the name exists, so a concurrent writer can
    never be overwritten. Where hard links are not supported, ``os.replace`` after an existence
    check is the fallback. ``default`` serialises objects JSON does not know (lm-eval passes
    its ``handle_non_serializable``); NaN is refused rather than written as invalid JSON.
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target}: already exists; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, default=default, ensure_ascii=False, allow_nan=default is not None)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise FileExistsError(f"{target}: already exists; not overwriting it") from None
        except OSError:
            if target.exists():
                raise FileExistsError(f"{target}: already exists; not overwriting it") from None
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
