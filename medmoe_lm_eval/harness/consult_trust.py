"""Which recorded candidates the Consult page may run: a results folder is data, not code.

The rule lives below the UI, beside the consultation it guards (``harness.consult``), so any
front end that runs a recorded candidate applies the same one.

Results folders travel between colleagues, and an adapter names what runs: model folders (whose
``trust_remote_code`` would execute their Python), router files, servers that receive an API key.
So the page never runs the adapter a results file records. It runs the user's own adapter file
instead: one on this machine, outside the results folder, at the recorded ``source`` path or
bundled under the recorded file name or the candidate's name, whose bytes have the recorded
sha256. Experts, router, ``trust_remote_code``, ``base_url`` and ``api_key_env`` then all come
from that file.

The one way round it is an explicit opt-in naming the candidate (``MEDMOE_CONSULT_TRUST=name,...``):
the recorded adapter then runs as recorded, except that ``trust_remote_code`` is switched off and
remote experts get no API key, since neither may follow from what a file someone sent says.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmoe_lm_eval import settings
from medmoe_lm_eval.jsonio import read_bounded

#: most bytes read from an adapter file a results folder names (adapters are a few hundred bytes)
MAX_ADAPTER_BYTES = 1 << 20


@dataclass(frozen=True)
class TrustDecision:
    """What the page may run for one candidate, or why it may not."""

    adapter: dict[str, Any] | None  # the adapter to run (from the user's file, or defanged under opt-in)
    reason: str | None  # why it may not run, None when it may
    origin: str = ""  # said on the page: where what runs comes from


def opted_in() -> set[str]:
    return {n.strip() for n in settings.CONSULT_TRUST.text().split(",") if n.strip()}


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _candidate_files(recorded: dict[str, Any], candidate: str) -> list[Path]:
    """Where the user's own copy of the adapter may be: the recorded path, or a bundled adapter."""
    from medmoe_lm_eval.paths import bundled_adapters_dir

    source = str(recorded.get("source") or "")
    names = [Path(source).name] if source.endswith((".yaml", ".yml")) else []
    names += [f"{n}.yaml" for n in (candidate, recorded.get("name")) if isinstance(n, str) and n and "/" not in n and "\\" not in n]
    files = [Path(source)] if source and Path(source).is_absolute() else []
    return list(dict.fromkeys([*files, *(bundled_adapters_dir() / n for n in names)]))


def local_adapter_file(recorded: dict[str, Any], candidate: str, results_root: Path) -> tuple[Path | None, str]:
    """The user's adapter file matching the recorded sha256, or ``(None, why none does)``."""
    wanted = str(recorded.get("sha256") or "")
    if len(wanted) != 64:
        return None, "its results record no adapter sha256, so no adapter file on this machine can be matched to it"
    why = f"no adapter file on this machine matches the one its run recorded (sha256 {wanted[:12]}…, recorded at {recorded.get('source') or 'an unknown path'})"
    for path in _candidate_files(recorded, candidate):
        try:  # a path the results folder names: only a regular file of an adapter's size is read
            digest = hashlib.sha256(read_bounded(path, MAX_ADAPTER_BYTES)).hexdigest()
        except OSError:
            continue
        if digest != wanted:
            why = f"adapter file {path} differs from the one its run recorded (sha256 {wanted[:12]}…): it was edited after the run"
            continue
        if _inside(path, results_root):
            why = f"its adapter file {path} lies inside the results folder, which is shared data, not your configuration"
            continue
        return path, ""
    return None, why


def defanged(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded adapter with nothing taken on trust: no remote code, no API key sent anywhere."""
    data = copy.deepcopy(recorded)
    for expert in data.get("experts") or []:
        if isinstance(expert, dict):
            expert["trust_remote_code"] = False
            expert.pop("api_key_env", None)
    return data


def decide(recorded: dict[str, Any], candidate: str, results_root: Path) -> TrustDecision:
    """The user's own adapter when one matches; the defanged recorded one when opted in; else why not."""
    from medmoe_lm_eval.harness.config import ConfigError, dump_adapter, load_adapter

    path, why = local_adapter_file(recorded, candidate, results_root)
    if path is not None:
        try:
            return TrustDecision(dump_adapter(load_adapter(path)), None, f"runs your adapter file {path} (sha256 matches the run)")
        except ConfigError as exc:
            return TrustDecision(None, f"your adapter file is not valid any more: {exc}")
    if candidate in opted_in():
        return TrustDecision(defanged(recorded), None, _opted_in_origin(recorded))
    return TrustDecision(None, f"{why}; keep the adapter YAML you evaluated, or opt in with {settings.CONSULT_TRUST.name}={candidate}")


def _opted_in_origin(recorded: dict[str, Any]) -> str:
    """What an opt-in runs, named: every expert's model or server, and the router file."""
    experts = [e for e in recorded.get("experts") or [] if isinstance(e, dict)]
    named = ", ".join(f"{e.get('name')}: {e.get('base_url') if e.get('backend') == 'remote' else e.get('model')}" for e in experts)
    router = (recorded.get("router") or {}).get("path") if isinstance(recorded.get("router"), dict) else None
    files = f"experts {named}" + (f"; router file {router}" if router else "")
    return f"runs the adapter recorded in the results file, as {settings.CONSULT_TRUST.name} asks ({files}), without trust_remote_code and without API keys"
