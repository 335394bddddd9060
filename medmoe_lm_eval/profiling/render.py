"""A profile as rich tables: what ``medmoe profile show <file>`` prints.

It draws a profile the store read (``store.profiles.load_profile``, from a ``results_*.json`` or
a ``profile_*.json``) and only what the profile holds: a figure that was not measured shows as
``-`` and the reason is printed below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from medmoe_lm_eval.console import cli_console

MISSING = "-"


# -- formatting ----------------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    """A profile's number, or ``None``: a file from elsewhere may hold anything where a number goes."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _num(value: Any, digits: int = 1) -> str:
    value = _number(value)
    if value is None:
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _bytes(value: Any) -> str:
    if _number(value) is None:
        return MISSING
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return MISSING


def _joules(value: Any) -> str:
    value = _number(value)
    if value is None:
        return MISSING
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _stat_cells(stats: dict[str, Any]) -> list[str]:
    lat = stats.get("batch_latency_ms") or stats.get("latency_ms") or {}  # schema 1 named the batch latency latency_ms
    return [
        _num(stats.get("requests")),
        _num(stats.get("expert_calls", stats.get("requests"))),
        _num(stats.get("wall_s"), 2),
        _num(stats.get("requests_per_s")),
        _num(stats.get("prompt_tokens_per_s")),
        _num(stats.get("generated_tokens_per_s")),
        _num(lat.get("p50")),
        _num(lat.get("p95")),
        _num(lat.get("max")),
    ]


_STAT_COLUMNS = ("requests", "expert calls", "busy s", "req/s", "prompt tok/s", "gen tok/s", "batch p50 ms", "batch p95 ms", "batch max ms")


def _row(table: Table, *cells: Any, style: str | None = None) -> None:
    """One row of plain text: a task, expert or device name from a file is shown as written, never
    read as rich markup (``[link=...]``, styles)."""
    table.add_row(*(Text(str(c)) for c in cells), style=style)


def _table(title: str, first: str, extra: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column(first, style="cyan", no_wrap=True)
    for col in _STAT_COLUMNS + extra:
        table.add_column(col, justify="right")
    return table


def _key_values(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for key, value in rows:
        _row(table, key, value)
    return table


# -- sections ------------------------------------------------------------------------------------


def _overview(p: dict[str, Any]) -> Table:
    hw, sw = p.get("hardware") or {}, p.get("software") or {}
    gpu = f"{hw.get('gpu_name')} (driver {hw.get('gpu_driver') or '?'}, {hw.get('gpu_count', 0)} visible)" if hw.get("gpu_name") else "none used"
    libs = ", ".join(f"{k} {v}" for k, v in sw.items() if v)
    return _key_values(
        "Run",
        [
            ("device", str(p.get("device"))),
            ("started", str(p.get("started_at") or MISSING)),
            ("wall time", f"{_num(p.get('wall_s'), 2)} s"),
            ("cpu", f"{hw.get('cpu_model', MISSING)} ({hw.get('cpu_cores', '?')} cores, {hw.get('cpu_threads_usable', '?')} threads usable)"),
            ("ram", _bytes(hw.get("ram_bytes"))),
            ("gpu", gpu),
            ("software", libs or MISSING),
        ],
    )


def _throughput(p: dict[str, Any]) -> Table:
    table = _table("Throughput and batch latency (a batch is one backend call on up to batch_size documents)", "scope")
    _row(table, "total", *_stat_cells(p.get("total") or {}), style="bold")
    for rtype, stats in (p.get("request_types") or {}).items():
        _row(table, rtype, *_stat_cells(stats))
    return table


def _tasks(p: dict[str, Any]) -> Table:
    table = _table("Tasks (requests: unique, served in this run)", "task", ("docs", "energy J", "J/request", "on", "truncated"))
    for task, stats in sorted((p.get("tasks") or {}).items()):
        energy, n = stats.get("energy_j"), stats.get("requests")
        per = energy / n if energy is not None and n else None
        on = ",".join(stats.get("energy_devices") or []) or MISSING
        _row(table, task, *_stat_cells(stats), _num(stats.get("docs")), _joules(energy), _joules(per), on, _num(stats.get("truncated", 0)))
    return table


def _single_stream(p: dict[str, Any]) -> Table | None:
    """The serving probe: one request at a time, router included (MLPerf single-stream)."""
    probe = p.get("single_stream")
    if not probe:
        return None
    table = Table(title="Single-stream latency (one request at a time, after warm-up; ms)", title_justify="left", header_style="bold")
    table.add_column("task", style="cyan", no_wrap=True)
    for col in ("answered", "streamed", "TTFT p50", "TTFT p95", "TPOT p50", "E2E p50", "E2E p95", "router p50", "J/request", "probe s"):
        table.add_column(col, justify="right")
    for task, s in sorted(probe.items()):
        ttft, tpot, e2e, router = (s.get(k) or {} for k in ("ttft_ms", "tpot_ms", "e2e_ms", "router_ms"))
        streamed = "yes" if s.get("streamed") else "no (TTFT = E2E)"
        cells = (ttft.get("p50"), ttft.get("p95"), tpot.get("p50"), e2e.get("p50"), e2e.get("p95"))
        cost = _num(s.get("probe_s"), 2)  # what measuring took, warm-up included
        answered = f"{_num(s.get('answered'))} of {_num(s.get('prompts'))}" if "answered" in s else _num(s.get("prompts"))  # empty answers time nothing
        _row(table, task, answered, streamed, *(_num(v) for v in cells), _num(router.get("p50"), 3), _joules(s.get("energy_per_request_j")), cost)
    return table


def _experts(p: dict[str, Any]) -> Table:
    table = _table("Experts (requests: this expert's calls)", "expert", ("device", "loads", "load s", "energy J", "source", "truncated"))
    for name, stats in (p.get("experts") or {}).items():
        loads = (_num(stats.get("loads")), _num(stats.get("load_s"), 2))
        energy = (_joules(stats.get("energy_j")), str(stats.get("energy_source") or MISSING))
        _row(table, name, *_stat_cells(stats), str(stats.get("device") or MISSING), *loads, *energy, _num(stats.get("truncated", 0)))
    return table


def _resources(p: dict[str, Any]) -> Table:
    mem, energy = p.get("memory") or {}, p.get("energy") or {}
    router, sampler = p.get("router") or {}, p.get("sampler") or {}
    gpu = mem.get("gpu") or {}
    rows = [("peak RSS", f"{_bytes(mem.get('peak_rss_bytes'))} ({mem.get('peak_rss_source', 'sampled')})")]
    rows += [(f"peak RSS, {expert} process", _bytes(v)) for expert, v in (mem.get("backend_peak_rss_bytes") or {}).items()]
    if gpu:
        rows += [
            (f"GPU used (NVML, {gpu.get('nvml_scope') or '?'})", _bytes(gpu.get("nvml_peak_used_bytes"))),
            ("torch max allocated", _bytes(gpu.get("torch_max_allocated_bytes"))),
            ("torch max reserved", _bytes(gpu.get("torch_max_reserved_bytes"))),
        ]
    if mem.get("gpu_error"):
        rows.append(("GPU figures", f"unavailable: {mem['gpu_error']}"))
    joules = energy.get("joules")
    rows.append(
        ("energy", f"{_joules(joules)} J from {energy.get('source')}" if joules is not None else f"not measured: {energy.get('reason') or 'no source'}")
    )
    rows += _device_energy_rows(energy)
    if joules is not None:
        rows += [
            ("energy in batches", f"{_joules(energy.get('batches_j'))} J net of idle ({_joules(energy.get('batches_gross_j'))} J gross)"),
            ("energy per request", f"{_joules(energy.get('per_request_j'))} J (unique requests served in this run)"),
        ]
        if energy.get("mean_power_w") is not None:
            rows.append(("mean power", f"{_num(energy['mean_power_w'])} W"))
        if energy.get("reason"):
            rows.append(("energy note", energy["reason"]))
    rows += _served_rows(p)
    rows.append(("router", f"{_num(router.get('queries', 0))} queries, {_num(router.get('total_s'), 3)} s, median {_num(router.get('median_ms'), 3)} ms/query"))
    rows.append(("sampler", f"{_num(sampler.get('samples'))} samples every {_num(sampler.get('interval_ms'), 0)} ms, {_num(sampler.get('cpu_s'), 3)} s CPU"))
    return _key_values("Memory, energy, router", rows)


def _device_energy_rows(energy: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for device, d in (energy.get("devices") or {}).items():
        idle = (
            f"idle {_num(d.get('idle_w'))} W ({d.get('idle_source')}, {_num(d.get('idle_s'), 1)} s)" if d.get("idle_w") is not None else "idle not subtracted"
        )
        got = f"{_joules(d.get('joules'))} J from {d.get('source')}; {idle}" if d.get("source") else f"not measured: {d.get('reason')}"
        rows.append((f"energy on {device}", got))
    return rows


def _served_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    served = p.get("served")
    if not served:
        return []
    cache = served.get("cache") or {}
    where = (
        f"lm-eval cache attached ({cache.get('file') or '?'}): cached requests are not counted"
        if cache.get("attached")
        else "no cache: every request served now"
    )
    return [("served", f"{_num(served.get('requests'))} unique requests; {where}")]


def _problems(p: dict[str, Any]) -> Text | None:
    sampler = p.get("sampler") or {}
    errors, notes = (sampler.get(k) or [] for k in ("errors", "notes"))
    errors, notes = ([v] if isinstance(v, str) else v for v in (errors, notes))  # one string is one message, not its letters
    lines = [f"error: {e}" for e in errors] + [f"note: {n}" for n in notes]
    if p.get("failed_batches"):
        lines.append(f"error: {p['failed_batches']} batch(es) raised and are not in the figures")
    return Text("\n".join(lines), style="yellow") if lines else None


_SECTIONS: tuple[Callable[[dict[str, Any]], RenderableType | None], ...] = (_overview, _throughput, _tasks, _single_stream, _experts, _resources, _problems)


def render_profile(profile: dict[str, Any]) -> list[RenderableType]:
    """The profile as a list of rich renderables (print them in order).

    A profile is data from wherever the results folder came from: a section whose values are not
    shaped as medmoe writes them is replaced by one line saying so, and the others still show.
    """
    if not profile.get("enabled", True):
        return [Text("profiling was disabled for this run (profile=false)")]
    out: list[RenderableType] = []
    for section in _SECTIONS:
        try:
            shown = section(profile)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            name = section.__name__.strip("_").replace("_", " ")
            shown = Text(f"{name}: not shown, this profile holds values medmoe does not write there ({type(exc).__name__}: {exc})", style="yellow")
        if shown is not None:
            out.append(shown)
    return out


def show_profile(profile: dict[str, Any], console: Console | None = None) -> None:
    """Print ``profile`` (as :func:`render_profile` draws it), a blank line after each table."""
    console = console or cli_console()
    for renderable in render_profile(profile):
        console.print(renderable)
        console.print()
