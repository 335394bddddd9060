"""What every page of the leaderboard shares: cached loading, sidebar filters, warnings, charts.

Pages only draw. The numbers come from ``medmoe_lm_eval.store.results`` and ``medmoe_lm_eval.analysis.ranking``
(the same functions ``medmoe rank`` and the static export use). Loaders are cached with
``st.cache_data`` keyed by the folder's path and a fingerprint (file count, newest mtime), so a new
run shows up on the next interaction without restarting, and nothing here imports torch.

Adding a page: write ``pages/<name>.py`` that starts with ``view = board_ui.current_view()``, and
add one ``st.Page`` line to ``PAGES`` in ``app.py``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import medmoe_lm_eval  # noqa: F401
except ImportError:  # a source checkout without an install: the package sits next to leaderboard/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import altair as alt
import pandas as pd
import streamlit as st

from medmoe_lm_eval import settings
from medmoe_lm_eval.analysis.use_cases import UseCase, default_use_cases_path, load_use_cases
from medmoe_lm_eval.analysis.views import Filters, filter_options
from medmoe_lm_eval.store.files import fingerprint
from medmoe_lm_eval.store.records import ReadIssue, ResultsSet
from medmoe_lm_eval.store.results import load_results
from medmoe_lm_eval.store.routing_logs import LOG_COLUMNS, read_routing_log

VIEW_KEY = "_medmoe_view"
KIND_COLOURS = {"full": "#1f77b4", "AWQ": "#2ca02c", "GPTQ": "#9467bd", "GGUF": "#ff7f0e", "MoE": "#d62728", "other": "#7f7f7f"}
FILTER_LABELS = {"domain": "Domain", "task": "Task", "backend": "Backend", "quantization": "Quantization", "kind": "Kind"}


@dataclass
class View:
    """The data every page draws: everything read, the filtered rows, the use cases."""

    results: ResultsSet
    frame: pd.DataFrame
    filters: Filters
    use_cases: dict[str, UseCase]
    use_case_problems: list[str]
    use_cases_path: Path


def results_root() -> Path:
    """The folder this board serves: ``MEDMOE_RESULTS``, default ``results/``."""
    return Path(settings.RESULTS.value() or "results")


@st.cache_data(show_spinner="Reading results…", max_entries=4)
def _load(root: str, stamp: tuple[str, int, float]) -> ResultsSet:
    return load_results(root)


@st.cache_data(max_entries=4)
def _load_use_cases(path: str, mtime: float) -> tuple[dict[str, UseCase], list[str]]:
    return load_use_cases(path)


@st.cache_data(max_entries=16)
def routing_log(path: str, mtime: float) -> tuple[pd.DataFrame, list[ReadIssue]]:
    issues: list[ReadIssue] = []
    return read_routing_log(path, issues), issues


def candidate_routing_log(results: ResultsSet, candidate: str) -> tuple[pd.DataFrame, list[str]]:
    """Routing-log rows of a candidate's latest runs (each file cached), plus reading problems."""
    frames, problems = [], []
    for info in results.latest_runs(candidate):
        if not info.routing_log:
            continue
        path = Path(info.routing_log)
        if not path.is_file():
            problems.append(f"{info.run_id}: routing log {path.name} is missing")
            continue
        log, issues = routing_log(str(path), _mtime(path))
        frames.append(log.assign(run_id=info.run_id))
        problems.extend(str(i) for i in issues)
    if not frames:
        return pd.DataFrame(columns=[*LOG_COLUMNS, "top_expert", "run_id"]), problems
    return pd.concat(frames, ignore_index=True), problems


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def build_view() -> View:
    """Load (cached), draw the shared sidebar filters, and hand the view to this rerun's page."""
    root = results_root()
    results = _load(str(root), fingerprint(root))
    cases_path = default_use_cases_path()
    cases, problems = _load_use_cases(str(cases_path), _mtime(cases_path))
    filters = sidebar_filters(results.frame)
    view = View(results, filters.apply(results.frame), filters, cases, problems, cases_path)
    st.session_state[VIEW_KEY] = view
    return view


def current_view() -> View:
    """The view the entrypoint built in this rerun; a page run on its own builds and frames it.

    The view is taken out of the session state so a later rerun never sees a stale one (Streamlit's
    ``AppTest`` reruns a page without its entrypoint after the first run).
    """
    view = st.session_state.pop(VIEW_KEY, None)
    if isinstance(view, View):
        return view
    view = build_view()
    st.session_state.pop(VIEW_KEY, None)
    show_issues(view)
    return view


def sidebar_filters(frame: pd.DataFrame) -> Filters:
    options = filter_options(frame) if not frame.empty else {k: [] for k in FILTER_LABELS}
    with st.sidebar:
        st.header("Filters")
        chosen = {key: tuple(st.multiselect(label, options[key], key=f"filter_{key}", placeholder="all")) for key, label in FILTER_LABELS.items()}
    return Filters(**chosen)


def show_issues(view: View) -> None:
    """Problems reading the folder, visible on every page; notes (re-runs, unknown metrics) folded."""
    warnings = view.results.warnings
    notes = [i for i in view.results.issues if i.level == "info"]
    if warnings:
        st.warning(f"{len(warnings)} problem(s) while reading {md(str(view.results.root))}; the rest is shown.", icon="⚠️")
        with st.expander("Show reading problems"):
            st.dataframe(pd.DataFrame([{"file": i.file, "problem": i.message} for i in warnings]), hide_index=True, width="stretch", key="problems_table")
    for problem in view.use_case_problems:
        st.warning(md(problem))
    if notes:
        with st.expander(f"{len(notes)} note(s): re-runs, unknown metrics, ignored files"):
            st.dataframe(pd.DataFrame([{"file": i.file, "note": i.message} for i in notes]), hide_index=True, width="stretch", key="notes_table")


def no_results_message(view: View) -> bool:
    """Say plainly when there is nothing to show; True if the page should stop."""
    if view.results.frame.empty:
        st.info(
            f"No lm-eval results under {md(str(view.results.root))}. Evaluate a candidate into this folder first, for example `medmoe eval --model medmoe --model_args adapter=ADAPTER.yaml --tasks TASK --output_path RESULTS`, then reload."
        )
        return True
    if view.frame.empty:
        st.info("No rows match the sidebar filters; clear a filter to see results.")
        return True
    return False


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def md(text: object) -> str:
    """Escape text (names, paths) for ``st.markdown``: every markdown and HTML character literal."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


# ---------------------------------------------------------------------------------------------
# Tables: sized so a name is never cut and a ranking never scrolls sideways at 1024-1400 px

#: the pixels one character of the grid's font takes at most (Source Sans 14 px), and a cell's padding
CHAR_PX, CELL_PAD_PX = 8, 24
#: rows this tall let the grid wrap a cell's text over four lines (Streamlit wraps above 64 px)
WRAP_ROW_PX = 80
#: the widest a ranking's name column starts (it grows on a wide screen); longer names wrap
RANKING_NAME_CAP = 130
#: below this width the page's side margins shrink from 5rem to 1.5rem: at 1024 px, with the
#: sidebar open, that is 110 px more for a table (562 -> 672 px)
NARROW_PX = 1200
_NARROW_CSS = (
    f"<style>@media (max-width: {NARROW_PX - 1}px) {{ [data-testid='stMainBlockContainer'] {{ padding-left: 1.5rem; padding-right: 1.5rem; }} }}</style>"
)


def narrow_margins() -> None:
    """Shrink the main column's side margins on narrow screens (every page; called by the entrypoint)."""
    st.html(_NARROW_CSS)


def name_width(names: pd.Series | list[str], cap: int = 280) -> int:
    """Pixels for a column of names: the longest whole on one line up to ``cap``, beyond that the
    row wraps it (``WRAP_ROW_PX``) instead of cutting it."""
    longest = max((len(str(n)) for n in names), default=9)
    return min(cap, max(90, longest * CHAR_PX + CELL_PAD_PX))


MEDICAL = "biomedical"


def medical_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of medical tasks first (the board's readers are clinicians), order otherwise kept."""
    if "domain" not in frame.columns:
        return frame
    return frame.iloc[(frame["domain"] != MEDICAL).to_numpy().argsort(kind="stable")]


def name_column(names: pd.Series | list[str]) -> st.column_config.Column:
    """The candidate column: wide enough for the longest name on one line (up to 420 px)."""
    return st.column_config.TextColumn("candidate", width=name_width(names, cap=420))


def show_table(frame: pd.DataFrame, columns: dict[str, Any], key: str, row_px: int | None = None, every_row: bool = False) -> None:
    """One board table: full width, no index, ``columns`` as its column config; with ``row_px``
    rows that tall (wrapped names and reasons); with ``every_row`` every row in view (no scrolling
    inside the table)."""
    sizing: dict[str, Any] = {"row_height": row_px} if row_px else {}
    if every_row:
        sizing["height"] = table_height(len(frame), row_px or 35)
    st.dataframe(frame, hide_index=True, width="stretch", column_config=columns, key=key, **sizing)


def table_height(rows: int, row_px: int = 35) -> int:
    """Every row in view (no scrolling inside the table): header + rows + border."""
    return 38 + row_px * max(rows, 1) + 3


# ---------------------------------------------------------------------------------------------
# Charts (Altair): drawing only, from frames computed in results/ranking


def kind_scale() -> alt.Scale:
    return alt.Scale(domain=list(KIND_COLOURS), range=list(KIND_COLOURS.values()))


def tradeoff_chart(points: pd.DataFrame, x: str, x_title: str, log_x: bool = False) -> alt.Chart:
    """Quality (y, with its 95% interval as an error bar) against a cost (x, with a horizontal
    error bar where ``<x>_low``/``<x>_high`` exist), coloured by kind, Pareto front joined by a
    line. Layers: front, points, labels, error bars."""
    base = alt.Chart(points)
    scale = alt.Scale(type="log") if log_x else alt.Scale(zero=False)
    enc_x = alt.X(f"{x}:Q", title=x_title, scale=scale)
    enc_y = alt.Y("quality:Q", title="task quality (main metric, chance-corrected)", scale=alt.Scale(zero=False))
    tooltip = [
        "candidate:N", "kind:N", "metric:N", alt.Tooltip("quality:Q", format=".3f"), alt.Tooltip("ci_low:Q", title="95% low", format=".3f"),
        alt.Tooltip("ci_high:Q", title="95% high", format=".3f"), "n_items:Q", "data:N", alt.Tooltip(f"{x}:Q", format=".4g"), "pareto:N",
    ]  # fmt: skip
    # one colour encoding in every layer: Vega-Lite then draws one legend for it (a layer with
    # legend=None would hide the kinds' legend)
    kind = alt.Color("kind:N", scale=kind_scale(), title="kind of candidate")
    dots = base.mark_point(filled=True, opacity=0.85).encode(
        x=enc_x, y=enc_y, color=kind,
        shape=alt.Shape("pareto:N", scale=alt.Scale(domain=["on front", "dominated"], range=["diamond", "circle"]), title="Pareto"),
        size=alt.condition(alt.datum.pareto == "on front", alt.value(160), alt.value(60)), tooltip=tooltip,
    )  # fmt: skip
    # names only on the front (nearby labels overlapped into a smear); every point has its tooltip
    labels = (
        base.transform_filter(alt.datum.pareto == "on front").mark_text(align="left", dx=7, dy=-6, fontSize=11).encode(x=enc_x, y=enc_y, text="candidate:N")
    )
    front = base.transform_filter(alt.datum.pareto == "on front").mark_line(strokeDash=[4, 3], color="#444").encode(x=enc_x, y=enc_y, order=f"{x}:Q")
    bars = base.mark_rule(strokeWidth=1.5, opacity=0.7).encode(x=enc_x, y="ci_low:Q", y2="ci_high:Q", color=kind)
    layers = front + dots + labels + bars
    if f"{x}_low" in points.columns and points[f"{x}_low"].notna().any():  # the cost has an interval too (latency)
        across = base.transform_filter(f"isValid(datum['{x}_low'])").mark_rule(strokeWidth=1.5, opacity=0.7)
        layers += across.encode(x=alt.X(f"{x}_low:Q", scale=scale), x2=f"{x}_high:Q", y=enc_y, color=kind)
    return layers.properties(height=360)


def heatmap(frame: pd.DataFrame, x: str, y: str, value: str, title: str, fmt: str = ".0%") -> alt.Chart:
    """A labelled heatmap (routing shares, confusion counts).

    Streamlit fits the whole chart (title and axes included) into ``height``, so the height
    leaves room for them above the rows themselves.
    """
    base = alt.Chart(frame).encode(  # labels whole (task names share long prefixes)
        x=alt.X(f"{x}:N", title=x, axis=alt.Axis(labelAngle=0, labelLimit=0)), y=alt.Y(f"{y}:N", title=y, axis=alt.Axis(labelLimit=0))
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), title=value), tooltip=[f"{y}:N", f"{x}:N", alt.Tooltip(f"{value}:Q", format=fmt)]
    )
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text(f"{value}:Q", format=fmt), color=alt.condition(alt.datum[value] > frame[value].max() / 2, alt.value("white"), alt.value("black"))
    )
    return (cells + text).properties(title=title, height=90 + 44 * max(1, frame[y].nunique()))
