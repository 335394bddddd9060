"""What the Consult page needs: which candidates can answer, the live consultant, the gate chart.

A candidate is consulted through the user's own adapter file whose sha256 the run recorded
(``config.medmoe.adapter``), never through what the results file says (see :mod:`medmoe_lm_eval.harness.consult_trust`).
Running it needs every model on this machine: local files that still exist, or hub models already
in the local Hugging Face cache (taken from the cache, never downloaded). A candidate that cannot
be consulted is listed with the reason instead. Browsing the page loads no model and imports no torch: the
:class:`~medmoe_lm_eval.harness.consult.Consultant` is built inside :func:`live_consultant`, a
``st.cache_resource`` keyed by the adapter's sha256, on the first question, and it loads each
expert only when a question is routed to it, once per app process.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from medmoe_lm_eval.harness.consult_trust import decide
from medmoe_lm_eval.store.records import ResultsSet

DISCLAIMER = (
    "Answers come from the evaluated models, which are research candidates: they are not medical "
    "advice (nor legal advice). Do not use them to diagnose, treat or decide anything about a person."
)
#: a domain holding at least this share of the router's probability counts as part of the question
MULTI_DOMAIN_MIN = 0.15
#: candidates whose experts stay loaded at once in one app process (the oldest is closed first)
MAX_LIVE_CANDIDATES = 2
ROLE_COLOURS = {"top": "#d62728", "shared": "#9467bd", "routed": "#1f77b4", "not activated": "#c7c7c7"}
ROLE_BADGES = {"top": "red", "shared": "violet", "routed": "blue"}
EXAMPLES = {
    "Chest pain": "A 54-year-old with crushing chest pain radiating to the left arm, sweating and nausea for 30 minutes. What is the most likely diagnosis and the first treatment?",
    "Drug interaction + liability": "Why did the patient on the blood thinner warfarin bleed after starting fluconazole, and is the pharmacist who failed to warn about the interaction liable for negligence in court?",
    "Contract law": "Is a contract signed under duress void or voidable, and which court hears the claim?",
    "Python": "Write a Python function that returns the n-th Fibonacci number using a loop.",
}


@dataclass(frozen=True)
class ConsultCandidate:
    """One candidate of the results folder, as the Consult page offers it."""

    name: str
    adapter: dict[str, Any] | None  # rebuilt adapter (paths on this machine), None if unavailable
    reason: str | None  # why it cannot be consulted here, None when it can
    run_id: str | None = None
    key: str = ""  # sha256 of the rebuilt adapter: the live consultant's cache key
    origin: str = ""  # where what runs comes from (the user's adapter file, or an explicit opt-in)

    @property
    def ready(self) -> bool:
        return self.reason is None

    @property
    def router_type(self) -> str | None:
        return ((self.adapter or {}).get("router") or {}).get("type")

    def describe(self) -> str:
        """``moe · classifier router, top-2 · experts: bio (biomedical), ... · shared: general (0.20)``."""
        adapter = self.adapter or {}
        experts = ", ".join(f"{e.get('name')} ({e.get('domain', 'general')})" for e in adapter.get("experts", []))
        parts = [str(adapter.get("kind", "?"))]
        router = adapter.get("router") or {}
        if router:
            k = "all experts always on" if router.get("type") in ("fixed", "uniform") else f"top-{router.get('top_k', 1)}"
            parts.append(f"{router.get('type')} router, {k}")
        parts.append(f"experts: {experts}")
        shared = adapter.get("shared_expert")
        if shared:
            parts.append(f"shared: {shared.get('name')} ({float(shared.get('weight', 0)):.2f})")
        return " · ".join(parts)


# ---------------------------------------------------------------------------------------------
# Which candidates can answer here


def adapter_key(adapter: Mapping[str, Any]) -> str:
    """sha256 of the adapter as data: same experts, paths, router and weights, same key."""
    return hashlib.sha256(json.dumps(adapter, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _is_hub_id(model: str) -> bool:
    return not model.startswith(("/", ".", "~")) and model.count("/") == 1 and not model.endswith(".gguf")


def _from_hub_cache(repo: str, revision: str | None, filename: str | None) -> str | None:
    """The local path of a cached hub model (folder) or file, or None; never goes online."""
    try:
        if filename:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(repo, filename, revision=revision)
            return found if isinstance(found, str) else None
        from huggingface_hub import snapshot_download

        return snapshot_download(repo, revision=revision, local_files_only=True)
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), unreadable cache, bad repo id
        return None


def _local_expert(expert: dict[str, Any]) -> str | None:
    """Point the expert at files on this machine (in place); the reason if it cannot be."""
    name, model, backend = expert.get("name"), str(expert.get("model", "")), expert.get("backend", "hf")
    if backend == "remote":
        return None  # a server: reachable or not, the answer says so
    filename = expert.get("filename")
    if Path(model).expanduser().exists() and not filename:
        return None
    if _is_hub_id(model):
        local = _from_hub_cache(model, expert.get("revision"), filename)
        if local is None:
            what = f"file '{filename}' of hub model '{model}'" if filename else f"hub model '{model}'"
            return f"expert '{name}': {what} is not in the local Hugging Face cache (the board never downloads); fetch it with `hf download {model}` and reload"
        expert["model"] = local
        expert.pop("filename", None)
        expert.pop("revision", None)
        return None
    return f"expert '{name}': model files '{model}' are missing on this machine"


def rebuild_adapter(adapter: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A recorded adapter made runnable here, or ``(None, reason)``. Validates with ``parse_adapter``."""
    from medmoe_lm_eval.harness.config import ConfigError, parse_adapter

    if not isinstance(adapter, dict) or not adapter.get("experts"):
        return None, "no medmoe adapter recorded in its results (a plain lm-eval run); evaluate it with `medmoe eval --model medmoe` to consult it here"
    data = copy.deepcopy(adapter)
    for expert in data["experts"] if isinstance(data["experts"], list) else []:
        if not isinstance(expert, dict):
            return None, "the recorded adapter lists an expert that is not a mapping"
        reason = _local_expert(expert)
        if reason:
            return None, reason
        tokenizer = expert.get("tokenizer")
        if isinstance(tokenizer, str) and tokenizer.startswith("/") and not Path(tokenizer).exists():
            return None, f"expert '{expert.get('name')}': tokenizer '{tokenizer}' is missing on this machine"
    router = data.get("router") if isinstance(data.get("router"), dict) else {}
    if router.get("path") and not Path(str(router["path"])).exists():
        return None, f"router file '{router['path']}' is missing on this machine"
    try:
        parse_adapter(data, data.get("source") or "<recorded adapter>")
    except ConfigError as exc:
        return None, f"the recorded adapter is not valid any more: {exc}"
    return data, None


def consult_candidates(results: ResultsSet, names: Iterable[str]) -> list[ConsultCandidate]:
    """Every named candidate with its newest recorded adapter, rebuilt, or the reason it cannot be."""
    out = []
    for name in sorted(set(names)):
        runs = results.latest_runs(name)
        recorded = next((r for r in runs if isinstance((r.medmoe or {}).get("adapter"), dict)), None)
        if recorded is None:
            kind = runs[0].model_type if runs else "unknown"
            out.append(
                ConsultCandidate(
                    name,
                    None,
                    f"plain `{kind}` run: no medmoe adapter recorded; evaluate it with `medmoe eval --model medmoe` to consult it here",
                    runs[0].run_id if runs else None,
                )
            )
            continue
        adapter, reason, origin = runnable_adapter(recorded.medmoe["adapter"], name, Path(results.root))
        out.append(ConsultCandidate(name, adapter, reason, recorded.run_id, adapter_key(adapter) if adapter else "", origin))
    return out


def runnable_adapter(recorded: dict[str, Any], name: str, root: Path) -> tuple[dict[str, Any] | None, str | None, str]:
    """``(adapter, reason, origin)``: the recorded adapter's files are looked for first (existence
    only: nothing is loaded), then what may run is decided by :mod:`medmoe_lm_eval.harness.consult_trust` and made
    runnable here in turn."""
    _, reason = rebuild_adapter(recorded)
    if reason:
        return None, reason, ""
    trust = decide(recorded, name, root)
    if trust.adapter is None:
        return None, trust.reason, ""
    adapter, reason = rebuild_adapter(trust.adapter)
    return adapter, reason, trust.origin


# ---------------------------------------------------------------------------------------------
# The live consultant: once per app process and adapter, built on the first question


@dataclass
class Live:
    """A consultant shared by every session of this process; one question at a time."""

    consultant: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def _release(live: Live) -> None:
    with live.lock:
        live.consultant.close()


@st.cache_resource(show_spinner="Preparing the router…", max_entries=MAX_LIVE_CANDIDATES, on_release=_release)
def live_consultant(key: str, _adapter: dict[str, Any]) -> Live:
    """The candidate's :class:`Consultant` (router ready, experts loaded on first use).

    ``key`` is :func:`adapter_key` of ``_adapter``, so the excluded argument never differs for
    one key. Importing the consultant here keeps torch out of a page that is only browsed.
    """
    from medmoe_lm_eval.harness.config import parse_adapter
    from medmoe_lm_eval.harness.consult import Consultant

    return Live(Consultant(parse_adapter(_adapter, _adapter.get("source") or "<recorded adapter>")))


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on (bad config, router file, model load), shown as one line."""
    from medmoe_lm_eval.harness.backends.base import BackendError
    from medmoe_lm_eval.harness.config import ConfigError
    from medmoe_lm_eval.harness.consult import EmptyQuestion
    from medmoe_lm_eval.harness.routing.scorers import RouterError

    return (ConfigError, RouterError, BackendError, EmptyQuestion)


# ---------------------------------------------------------------------------------------------
# Drawing a decision


def gate_frame(decision: Any, adapter: Mapping[str, Any]) -> pd.DataFrame:
    """One row per expert: gate weight, router probability, role (top/shared/routed/not activated)."""
    domains = {e["name"]: e.get("domain", "general") for e in adapter.get("experts", [])}
    rows = []
    for name, weight in decision.gate.items():
        role = decision.role(name) or "not activated"
        prob = decision.router_probs.get(name)
        rows.append({
            "expert": name, "domain": domains.get(name, "general"), "label": f"{name} ({domains.get(name, 'general')})",
            "weight": float(weight), "router_prob": None if prob is None else float(prob), "role": role, "activated": role != "not activated",
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values(["weight", "expert"], ascending=[False, True], kind="stable").reset_index(drop=True)


def gate_chart(frame: pd.DataFrame) -> alt.Chart:
    """Gate weight per expert as bars coloured by role; the router's p(expert|question) as ticks."""
    order = list(frame["label"])
    y = alt.Y("label:N", sort=order, title=None)
    x_scale = alt.Scale(domain=[0, 1])
    tooltip = ["expert:N", "domain:N", "role:N", alt.Tooltip("weight:Q", format=".3f"), alt.Tooltip("router_prob:Q", format=".3f", title="p(expert|question)")]
    base = alt.Chart(frame)
    bars = base.mark_bar().encode(
        x=alt.X("weight:Q", scale=x_scale, title="gate weight (ticks: router p(expert | question) before top-k)"), y=y,
        color=alt.Color("role:N", scale=alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values())), title="activated as"),
        tooltip=tooltip,
    )  # fmt: skip
    labels = base.mark_text(align="left", dx=4).encode(x=alt.X("weight:Q", scale=x_scale), y=y, text=alt.Text("weight:Q", format=".2f"))
    layers = [bars, labels]
    if frame["router_prob"].notna().any():
        layers.append(
            base.transform_filter("isValid(datum.router_prob)")
            .mark_tick(color="black", thickness=2, size=22)
            .encode(x=alt.X("router_prob:Q", scale=x_scale), y=y, tooltip=tooltip)
        )
    return alt.layer(*layers).properties(height=70 + 38 * len(frame))


def activated_markdown(frame: pd.DataFrame, md) -> str:
    """The activated experts, highlighted by role: ``:red-badge[top] **bio** 0.78 ...``."""
    parts = [f":{ROLE_BADGES[r.role]}-badge[{r.role}] **{md(r.expert)}** {r.weight:.2f}" for r in frame.itertuples() if r.activated]
    return "Activated: " + " &nbsp; ".join(parts)


def domain_shares(frame: pd.DataFrame) -> pd.Series:
    """How the question's weight splits between the routed specialists' domains.

    The router's ``p(expert | question)`` where it has one (before top-k), else the gate weights
    of the routed experts (a fixed ensemble); the shared expert is not a specialist.
    """
    routed = frame[frame["role"] != "shared"]
    values = routed.set_index("domain")["router_prob"] if routed["router_prob"].notna().any() else routed.set_index("domain")["weight"]
    values = values.fillna(0.0).groupby(level=0).sum()
    total = values.sum()
    return (values / total).sort_values(ascending=False) if total > 0 else values


def sharing_text(frame: pd.DataFrame, top: str, static: bool) -> tuple[bool, str]:
    """``(multi_domain, sentence)`` saying how the weight is shared between specialists."""
    if len(frame) == 1:
        return False, f"One expert: {top} answers every question."
    if static:
        weights = ", ".join(f"{r.expert} {r.weight:.0%}" for r in frame.itertuples() if r.weight > 0)
        return True, f"Fixed ensemble: every expert weighs in on every question ({weights}); the answer is generated by the highest-weight expert, {top}."
    shares = domain_shares(frame)
    spanned = shares[shares >= MULTI_DOMAIN_MIN]
    split = ", ".join(f"{d} {s:.0%}" for d, s in spanned.items())
    if len(spanned) > 1:
        others = [str(e) for e in frame.loc[frame["activated"] & (frame["role"] == "routed"), "expert"]]
        if others:
            return True, (
                f"Multi-domain question: the router shares it between {split}. The answer is generated by the top expert, {top}; "
                f"{', '.join(others)} {'also weighs' if len(others) == 1 else 'also weigh'} in when this candidate scores answer options (log-likelihood mixture)."
            )
        return True, f"Multi-domain question: the router shares it between {split}, but only the top expert, {top}, is activated: it answers alone."
    return False, f"Single-domain question: {shares.index[0]} {shares.iloc[0]:.0%}."
