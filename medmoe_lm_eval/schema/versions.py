"""``schema_version``: which layout a record was written in, and whether this reader knows it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the key every medmoe record carries its layout version under
VERSION_KEY = "schema_version"


def version_of(record: Mapping[str, Any], legacy_key: str | None = None) -> Any:
    """The record's version: ``schema_version``, else ``legacy_key`` (a name an older layout used),
    else ``None`` (written before versions were)."""
    if VERSION_KEY in record:
        return record[VERSION_KEY]
    return record.get(legacy_key) if legacy_key else None


def version_problem(record: Mapping[str, Any], kind: str, current: int, legacy_key: str | None = None) -> str | None:
    """``None`` when this code reads ``record`` (no version, or 1 to ``current``), else one line
    saying why it is skipped and what fixes it (the caller prefixes the file)."""
    version = version_of(record, legacy_key)
    if version is None:
        return None
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= current:
        return None
    shown = repr(version)[:40]
    return f"{kind} schema_version {shown} is not one this medmoe-lm-eval reads (1 to {current}); skipped; fix: upgrade medmoe-lm-eval to read it"
