"""The profiler on CPU with real work: tiny Llama forward passes, real processes, real files.

Figures are checked for presence, sign and consistency (tokens equal the tokenizer's count,
p50 <= p95 <= max, per-group figures add up to the totals), not for speed: timings vary with
the machine, so speed targets live in ``bench/bench_profiler.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from medmoe_lm_eval.profiling import ProfileError, energy
from medmoe_lm_eval.profiling.energy import CounterIntegrator, EnergySeries, PowerIntegrator, counter_delta
from medmoe_lm_eval.profiling.profiler import Profiler
from medmoe_lm_eval.profiling.render import render_profile, show_profile
from medmoe_lm_eval.profiling.sampler import Sampler
from medmoe_lm_eval.profiling.served import cache_share, energy_per_correct
from medmoe_lm_eval.profiling.stats import BatchRecord, Latency, Throughput, busy_seconds
from medmoe_lm_eval.store.profiles import load_profile

MED = [
    "The patient presented with fever, cough and shortness of breath for three days.",
    "Metformin is a first-line treatment for type 2 diabetes mellitus.",
    "An ECG showed ST elevation in leads II, III and aVF.",
    "Amoxicillin is a penicillin antibiotic.",
    "The biopsy confirmed a benign lesion.",
    "Hypertension increases the risk of stroke and heart failure.",
]
LAW = [
    "The tenant must give thirty days written notice before leaving.",
    "A contract requires offer, acceptance and consideration.",
    "The court dismissed the appeal for lack of standing.",
]


def _sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "medmoe-profiler"]


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    """The tiny model's tokenizer and a loader for its weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return tok, lambda: AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()


def _loglikelihoods(model, tok, texts: list[str]) -> np.ndarray:
    """Sum of token log-probabilities of each text: a real forward pass per batch."""
    import torch

    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**enc).logits[:, :-1]
    targets = enc["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    return (logp * enc["attention_mask"][:, 1:]).sum(-1).numpy()


def _generate(model, tok, texts: list[str], new_tokens: int = 6) -> int:
    """Greedy generation; returns how many tokens were generated in the batch."""
    import torch

    total = 0
    for text in texts:
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        total += out.shape[1] - enc["input_ids"].shape[1]
    return total


# -- a profiled run of real work ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def profiled(hf):
    """One profiled session: an expert load, loglikelihood and generation batches on two tasks."""
    tok, load = hf
    prof = Profiler(interval_ms=10, device="cpu")
    prof.start()
    with prof.expert_load("bio"):
        model = load()
    counted = {"prompt": 0, "generated": 0, "batches": 0}
    for task, texts in (("med", MED), ("law", LAW)):
        for start in range(0, len(texts), 2):
            batch = texts[start : start + 2]
            n_tokens = sum(len(ids) for ids in tok(batch)["input_ids"])
            with prof.track(expert="bio", request_type="loglikelihood", task=task, n_requests=len(batch), prompt_tokens=n_tokens):
                _loglikelihoods(model, tok, batch)
            counted["prompt"] += n_tokens
            counted["batches"] += 1
    batch = LAW[:2]
    n_tokens = sum(len(ids) for ids in tok(batch)["input_ids"])
    with prof.track(expert="bio", request_type="generate_until", task="law", n_requests=2, prompt_tokens=n_tokens) as rec:
        rec.generated_tokens = _generate(model, tok, batch)
    counted["prompt"] += n_tokens
    counted["generated"] = rec.generated_tokens
    counted["batches"] += 1
    prof.add_router_time(0.004, 8)
    prof.add_router_time(0.002, 2)
    prof.note_truncation(task="med", expert="bio", n=3)
    prof.stop()
    return prof.report(), counted


def test_tokens_counted_equal_the_tokenizers_count(profiled, hf):
    report, counted = profiled
    tok, _ = hf
    expected = sum(len(ids) for ids in tok(MED + LAW + LAW[:2])["input_ids"])
    assert report["total"]["prompt_tokens"] == counted["prompt"] == expected
    assert report["total"]["generated_tokens"] == counted["generated"] > 0
    assert report["tasks"]["med"]["prompt_tokens"] == sum(len(ids) for ids in tok(MED)["input_ids"])
    assert report["request_types"]["generate_until"]["generated_tokens"] == counted["generated"]
    assert report["request_types"]["loglikelihood"]["generated_tokens"] == 0


def test_latency_and_throughput_are_positive_and_ordered(profiled):
    report, counted = profiled
    groups = [report["total"], *report["request_types"].values(), *report["tasks"].values(), report["experts"]["bio"]]
    for stats in groups:
        lat = stats["batch_latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["max"]
        assert stats["wall_s"] > 0 and stats["requests_per_s"] > 0 and stats["prompt_tokens_per_s"] > 0
        assert stats["requests_per_s"] == pytest.approx(stats["requests"] / stats["wall_s"])
    assert report["total"]["batch_latency_ms"]["n"] == counted["batches"]
    assert report["total"]["requests"] == len(MED) + len(LAW) + 2
    assert report["request_types"]["generate_until"]["generated_tokens_per_s"] > 0
    # sequential batches: the per-task busy times add up to the total, which fits in the run
    assert sum(t["wall_s"] for t in report["tasks"].values()) == pytest.approx(report["total"]["wall_s"])
    assert report["total"]["wall_s"] < report["wall_s"]


def test_expert_load_router_and_truncation_are_reported(profiled):
    report, _ = profiled
    bio = report["experts"]["bio"]
    assert bio["loads"] == 1 and bio["load_s"] > 0
    assert bio["request_types"].keys() == {"loglikelihood", "generate_until"}
    assert report["router"] == {"calls": 2, "queries": 10, "total_s": pytest.approx(0.006), "median_ms": pytest.approx(0.75)}
    assert report["tasks"]["med"]["truncated"] == 3 and report["tasks"]["law"]["truncated"] == 0
    assert report["tasks"]["law"]["experts"]["bio"]["requests"] == len(LAW) + 2


def test_memory_hardware_and_sampler_figures(profiled):
    report, _ = profiled
    import torch
    import transformers

    assert report["schema_version"] == 3 and report["enabled"] is True and report["device"] == "cpu"
    assert report["memory"]["peak_rss_bytes"] > 50 * 2**20  # torch alone is bigger than that
    assert report["memory"]["gpu"] is None and report["memory"]["gpu_error"] is None
    hw, sw = report["hardware"], report["software"]
    assert hw["cpu_cores"] >= 1 and hw["ram_bytes"] > 0 and hw["cpu_model"] and hw["gpu_name"] is None
    assert sw["torch"] == torch.__version__ and sw["transformers"] == transformers.__version__
    assert sw["lm_eval"] and sw["python"] and sw["medmoe_lm_eval"]
    assert report["sampler"]["samples"] >= 2 and report["sampler"]["cpu_s"] >= 0 and report["sampler"]["errors"] == []
    json.dumps(report, allow_nan=False)


def test_energy_is_measured_or_its_absence_explained(profiled):
    energy_report = profiled[0]["energy"]
    if energy_report["source"] == "rapl":  # a host that exposes RAPL to this user
        assert energy_report["joules"] >= 0 and energy_report["per_request_j"] is not None
    else:
        assert energy_report["joules"] is None and energy_report["source"] is None
        assert "rapl" in energy_report["reason"]
        assert all(t["energy_j"] is None for t in profiled[0]["tasks"].values())


def test_profiling_on_and_off_gives_identical_scores(hf):
    tok, load = hf
    model = load()
    scores = {}
    for enabled in (True, False):
        prof = Profiler(interval_ms=5, enabled=enabled)
        prof.start()
        with prof.track(expert="bio", request_type="loglikelihood", task="med", n_requests=len(MED), prompt_tokens=0):
            scores[enabled] = _loglikelihoods(model, tok, MED)
        prof.stop()
    np.testing.assert_array_equal(scores[True], scores[False])


# -- real processes ----------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from medmoe_lm_eval.profiling.profiler import Profiler
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    prof = Profiler(interval_ms=20)
    prof.start()
    with prof.expert_load("m"):
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    enc = tok(["The patient presented with fever and cough."] * 4, return_tensors="pt")
    with prof.track(expert="m", request_type="loglikelihood", task="t", n_requests=4, prompt_tokens=int(enc["attention_mask"].sum())):
        with torch.no_grad():
            model(**enc)
    prof.stop()
    rep = prof.report()
    print(json.dumps({"peak": rep["memory"]["peak_rss_bytes"], "source": rep["memory"]["peak_rss_source"]}))
    """
)


def _children_memory(*model_dirs: Path) -> list[dict[str, object]]:
    """Run the child script on each model at once (one fresh process each); their reports."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for d in model_dirs]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_peak_rss_grows_when_a_bigger_model_is_loaded(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from medmoe_lm_eval.testing.tiny import TinySpec, build_model

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    big_dir = tmp_path / "big"
    build_model(tok, TinySpec(hidden_size=512, intermediate_size=2048, num_layers=4)).save_pretrained(str(big_dir))
    tok.save_pretrained(str(big_dir))
    weights = sum(f.stat().st_size for f in big_dir.glob("*.safetensors"))
    small, big = _children_memory(tiny_model_dir, big_dir)
    assert big["peak"] - small["peak"] > 0.5 * weights
    assert big["source"] == small["source"]


def test_external_process_rss_is_sampled(tmp_path):
    """A separate process stands in for a llama.cpp server: its RSS is that of a real process."""
    hog = "import sys, time; b = bytearray(96 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        prof = Profiler(interval_ms=10)
        prof.start()
        prof.register_external_process("server", proc.pid)
        prof.register_external_process("gone", 2**22 + 12345)  # no such pid: noted, not raised
        time.sleep(0.05)
        prof.stop()
    finally:
        proc.kill()
        proc.wait()
    report = prof.report()
    assert report["memory"]["backend_peak_rss_bytes"]["server"] >= 96 * 2**20
    assert "gone" not in report["memory"]["backend_peak_rss_bytes"]
    assert any("gone" in note for note in report["sampler"]["notes"])


# -- lifecycle ---------------------------------------------------------------------------------------


def test_disabled_profiler_is_a_cheap_no_op():
    before = len(_sampler_threads())
    prof = Profiler(enabled=False)
    prof.start()
    assert len(_sampler_threads()) == before
    with prof.expert_load("x"):
        pass
    with prof.track(expert="x", request_type="loglikelihood", task="t", n_requests=2, prompt_tokens=5) as rec:
        rec.generated_tokens = 3
    prof.add_router_time(1.0, 1)
    prof.note_truncation(task="t", expert="x", n=1)
    prof.stop()
    assert isinstance(rec, BatchRecord) and rec.n_requests == 2
    assert prof.report() == {"schema_version": 3, "enabled": False}


def test_snapshot_is_frozen_and_later_work_does_not_change_it():
    prof = Profiler(device="cpu")
    with prof.expert_load("x", device="cpu"):
        pass
    with prof.track(expert="x", request_type="loglikelihood", task="t", n_requests=2, prompt_tokens=5):
        pass
    prof.note_truncation(task="t", expert="x", n=1)
    snap = prof.snapshot()
    with prof.track(expert="y", request_type="generate_until", task="t", n_requests=1, prompt_tokens=1):
        pass
    prof.note_truncation(task="t", expert="x", n=2)
    prof.note("later")
    assert [r.expert for r in snap.records] == ["x"] and snap.truncated == {("t", "x"): 1} and snap.notes == ()
    assert len(snap.loads["x"]) == 1 and snap.expert_device("x") == "cpu" and snap.expert_device("never declared") == "cpu"
    with pytest.raises(AttributeError):
        snap.records = ()  # type: ignore[misc]
    with pytest.raises(ProfileError, match="disabled profiler"):
        Profiler(enabled=False).snapshot()


def test_start_and_stop_are_idempotent_and_join_the_thread():
    before = len(_sampler_threads())
    prof = Profiler(interval_ms=5)
    prof.stop()  # never started
    prof.start()
    prof.start()
    assert len(_sampler_threads()) == before + 1
    time.sleep(0.03)
    prof.stop()
    prof.stop()
    assert len(_sampler_threads()) == before
    first = prof.report()
    prof.start()  # a second window adds to the first
    time.sleep(0.03)
    prof.stop()
    second = prof.report()
    assert second["wall_s"] > first["wall_s"] > 0
    assert second["sampler"]["samples"] > first["sampler"]["samples"] >= 2
    assert len(_sampler_threads()) == before


def test_failed_batch_is_counted_not_timed():
    prof = Profiler(interval_ms=50)
    prof.start()
    with pytest.raises(RuntimeError), prof.track(expert="x", request_type="loglikelihood", task="t", n_requests=1, prompt_tokens=1):
        raise RuntimeError("backend failed")
    prof.stop()
    report = prof.report()
    assert report["failed_batches"] == 1 and report["total"]["requests"] == 0
    assert report["total"]["batch_latency_ms"] == {"p50": None, "p95": None, "max": None, "mean": None, "n": 0}


def test_sampler_records_errors_from_an_injected_failing_reading():
    calls = []

    def tick(now: float, errors: list[str]) -> None:
        calls.append(now)
        if len(calls) % 2:
            raise OSError("reading failed (injected)")

    sampler = Sampler(0.005, tick)
    sampler.start()
    time.sleep(0.05)
    sampler.stop()
    assert sampler.samples == len(calls) >= 4
    (error,) = sampler.errors
    assert error.startswith("sampler: OSError: reading failed (injected) (x")


def test_write_is_atomic_and_never_overwrites(tmp_path):
    prof = Profiler(interval_ms=20)
    prof.start()
    prof.stop()
    path = prof.write(tmp_path / "runs" / "profile_a.json")
    assert json.loads(path.read_text())["enabled"] is True
    with pytest.raises(FileExistsError):
        prof.write(path)
    in_dir = prof.write(tmp_path / "runs")
    assert in_dir.parent == tmp_path / "runs" and in_dir.name.startswith("profile_")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([path.name, in_dir.name])  # no temp files left


# -- figures from building blocks ----------------------------------------------------------------------


def test_latency_percentiles_and_busy_time():
    values = [0.010, 0.020, 0.030, 0.040, 0.100]
    lat = Latency.from_seconds(values)
    assert lat.p50_ms == pytest.approx(30.0) and lat.p95_ms == pytest.approx(np.percentile(values, 95) * 1000)
    assert lat.max_ms == pytest.approx(100.0) and lat.n == 5
    assert busy_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)]) == pytest.approx(3.0)  # overlap counted once
    recs = [BatchRecord("e", "loglikelihood", "t", 4, 40, 0, 0.0, 1.0), BatchRecord("e", "loglikelihood", "t", 4, 40, 0, 0.5, 2.0)]
    assert Throughput.from_records(recs).to_dict()["requests_per_s"] == pytest.approx(8 / 2.0)


def test_counter_delta_handles_wrap_and_restart():
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(900, 50, 1000) == 150  # wrapped past the top
    assert counter_delta(900, 700, 1000) == 700  # a restart, not a wrap of 800


def test_energy_series_and_integrators():
    power = PowerIntegrator()
    for t, w in ((0.0, 100.0), (1.0, 100.0), (2.0, 200.0)):
        power.feed(t, w)
    assert power.series.total == pytest.approx(250.0) and power.peak_w == 200.0
    assert power.series.between([(0.0, 1.0), (0.5, 1.5), (5.0, 6.0)]) == pytest.approx([100.0, 50.0 + 75.0, 0.0])
    counter = CounterIntegrator(1e-3, [10_000])
    counter.feed(0.0, [9_000])
    counter.feed(1.0, [1_000])  # wrapped: 2 J
    counter.resume()  # stopped for a while: the next reading is only a baseline
    counter.feed(5.0, [4_000])
    counter.feed(6.0, [5_000])
    assert counter.series.total == pytest.approx(3.0)
    assert counter.series.between([(1.0, 5.0)]) == [0.0]
    assert EnergySeries().between([(0.0, 1.0)]) == [0.0]


# -- RAPL from a copy of the sysfs tree (RAPL is not exposed in this container) -------------------------


def _rapl_tree(root: Path, start_uj: int, max_uj: int) -> Path:
    zone = root / "intel-rapl:0"
    (zone / "intel-rapl:0:0").mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "energy_uj").write_text(f"{start_uj}\n")
    (zone / "intel-rapl:0:0" / "name").write_text("core\n")  # inside the package: not added again
    (zone / "intel-rapl:0:0" / "energy_uj").write_text("5\n")
    return zone / "energy_uj"


def test_rapl_fake_sysfs_counter_with_wrap_gives_joules_per_task(tmp_path, monkeypatch):
    counter = _rapl_tree(tmp_path, start_uj=900_000, max_uj=1_000_000)
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path)
    prof = Profiler(interval_ms=5)
    prof.start()
    value = 900_000
    with prof.track(expert="e", request_type="loglikelihood", task="t", n_requests=10, prompt_tokens=100):
        for _ in range(30):  # 30 steps of 10 mJ, wrapping once at 1 J
            value = (value + 10_000) % 1_000_000
            counter.write_text(f"{value}\n")
            time.sleep(0.004)
    prof.stop()
    report = prof.report()
    assert report["energy"]["source"] == "rapl" and report["energy"]["rapl_zones"] == "package-0"
    assert report["energy"]["joules"] == pytest.approx(0.3)
    assert 0 < report["tasks"]["t"]["energy_j"] <= report["energy"]["joules"] + 1e-9
    assert report["energy"]["per_request_j"] == pytest.approx(report["tasks"]["t"]["energy_j"] / 10)


def test_rapl_fake_sysfs_unreadable_counter_names_the_file(tmp_path, monkeypatch):
    counter = _rapl_tree(tmp_path, start_uj=0, max_uj=1_000_000)
    counter.unlink()
    counter.mkdir()  # reading it fails like a permission error would (tests run as root here)
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path)
    prof = Profiler(interval_ms=20)
    prof.start()
    prof.stop()
    report = prof.report()["energy"]
    assert report["joules"] is None and report["source"] is None
    assert str(counter) in report["reason"]


def test_rapl_absent_is_reported_as_null_with_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path / "missing")
    prof = Profiler(interval_ms=20)
    prof.start()
    prof.stop()
    report = prof.report()["energy"]
    assert report["joules"] is None and "does not exist" in report["reason"]


# -- functions for the leaderboard and the CLI -------------------------------------------------------------


def test_energy_per_correct_counts_only_the_documents_served_now():
    """12 J spent on the 4 documents served now, accuracy 0.5: 12 / (0.5 * 4) = 6 J, not 12 / (0.5 * 8)."""
    served = {"requests": 16, "tasks": {}, "cache": {"attached": True, "file": "c.db"}}
    profile = {"enabled": True, "served": served, "tasks": {"med": {"energy_j": 12.0, "docs": 4}, "law": {"energy_j": None, "docs": 2}}}
    assert energy_per_correct(profile, "med", 0.5, 8) == pytest.approx(6.0)
    assert cache_share(profile, "med", 8) == pytest.approx(0.5) and cache_share(profile, "code", 8) == pytest.approx(1.0)
    old = {"enabled": True, "tasks": {"med": {"energy_j": 12.0}}}  # a schema-1 profile: no document counts
    assert energy_per_correct(old, "med", 0.5, 8) == pytest.approx(3.0) and cache_share(old, "med", 8) is None
    assert energy_per_correct(profile, "med", 0.0, 8) is None
    assert energy_per_correct(profile, "law", 0.5, 8) is None
    assert energy_per_correct(profile, "code", 0.5, 8) is None
    assert energy_per_correct({"enabled": False}, "med", 0.5, 8) is None


def _print(path, width: int = 200) -> str:
    """What ``medmoe profile show`` prints for ``path``: the tables, or the one-line error."""
    console = Console(record=True, width=width, color_system=None)
    try:
        show_profile(load_profile(path), console=console)
    except ProfileError as exc:
        console.print(f"error: {exc}", soft_wrap=True)
    return console.export_text()


def test_show_profile_prints_results_and_profile_files(profiled, tmp_path):
    report, _ = profiled
    results = tmp_path / "results_2025-01-01T00-00-00.json"
    results.write_text(json.dumps({"results": {}, "config": {"model": "medmoe", "medmoe_profile": report}}))
    profile = tmp_path / "profile_x.json"
    profile.write_text(json.dumps(report))
    for path in (results, profile):
        text = _print(path)
        for expected in (
            "Throughput",
            "loglikelihood",
            "generate_until",
            "med",
            "law",
            "bio",
            "peak RSS",
            "router",
            "Intel" if "Intel" in report["hardware"]["cpu_model"] else "cpu",
        ):
            assert expected in text, expected
    assert load_profile(results) == load_profile(profile) == report
    assert len(render_profile(report)) >= 5


def test_show_profile_without_a_profile_gives_one_line_naming_the_file(tmp_path):
    plain = tmp_path / "results_plain.json"
    plain.write_text(json.dumps({"results": {}, "config": {"model": "hf"}}))
    text = _print(plain, width=400).strip()
    assert text.count("\n") == 0 and str(plain) in text and "no medmoe profile" in text
    missing = _print(tmp_path / "nope.json", width=400).strip()
    assert missing.count("\n") == 0 and "nope.json" in missing
    with pytest.raises(ProfileError):
        load_profile(plain)
    off = tmp_path / "profile_off.json"
    off.write_text(json.dumps({"enabled": False}))
    assert "disabled" in _print(off)


def test_show_profile_of_a_file_from_elsewhere_with_wrong_values_shows_what_it_can(tmp_path):
    """A profile is data: strings where numbers go, a string where a table goes, markup in names."""
    hostile = {
        "enabled": True, "schema": 2, "total": {"requests": "many", "wall_s": float("nan")},
        "tasks": {"t": "oops"}, "single_stream": {"t": {"prompts": "four", "probe_s": "3s", "ttft_ms": {"p50": "fast"}}},
        "experts": {"[bold red]evil[/]": {"loads": "one", "energy_j": "lots", "device": "[link=http://x]cpu[/link]"}},
        "energy": "none", "sampler": {"notes": "a single note"},
    }  # fmt: skip
    path = tmp_path / "profile_hostile.json"
    path.write_text(json.dumps(hostile))
    text = _print(path, width=400)
    assert "tasks: not shown, this profile holds values medmoe does not write there (AttributeError" in text
    assert "resources: not shown" in text  # energy is a string, not a table
    assert "[bold red]evil[/]" in text and "[link=http://x]cpu[/link]" in text  # shown as written, never read as markup
    assert "note: a single note" in text and "note: a\n" not in text  # one message, not its letters
    single = next(line for line in text.splitlines() if line.startswith("│ t "))  # strings where numbers go: "-"
    assert "four" not in single and "3s" not in single and "fast" not in single


# -- end to end through lm-eval and MedMoELM -------------------------------------------------------------

_E2E_TASKS = {
    "prof_e2e_mcqa": """
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}/medmcqa.jsonl}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{[opa, opb, opc, opd]}}}}"
doc_to_target: cop
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}}]
""",
    "prof_e2e_gen": """
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}/legal_ruleqa.jsonl}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 8, do_sample: false}}
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
""",
}


@pytest.mark.slow
def test_lm_eval_run_profile_on_and_off_gives_identical_metrics(tiny_model_dir, tmp_path):
    """``simple_evaluate(model="medmoe")`` twice: same metrics; the profile lands in the results and beside them."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.paths import bundled_data_dir

    register()
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    for name, body in _E2E_TASKS.items():
        (tasks_dir / f"{name}.yaml").write_text(f"task: {name}\n" + body.format(data=bundled_data_dir()).lstrip())
    adapter = tmp_path / "adapter.yaml"
    adapter.write_text(f"name: tiny\nkind: single\nexperts:\n  - name: bio\n    model: {tiny_model_dir}\n    device: cpu\n    batch_size: 4\n")
    manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    runs = {}
    for profile in (True, False):
        log_dir = tmp_path / f"logs_{profile}"
        runs[profile] = lm_eval.simple_evaluate(
            model="medmoe",
            model_args={"adapter": str(adapter), "profile": profile, "log_dir": str(log_dir)},
            tasks=list(_E2E_TASKS),
            task_manager=manager,
            limit=6,
            device="cpu",
            log_samples=False,
        )
    assert runs[True]["results"] == runs[False]["results"]
    assert runs[False]["config"]["medmoe_profile"] == {"schema_version": 3, "enabled": False}
    prof = runs[True]["config"]["medmoe_profile"]
    assert prof["total"]["requests"] == 6 * 4 + 6  # four choices per question, one generation each
    assert set(prof["tasks"]) == set(_E2E_TASKS) and prof["experts"]["bio"]["loads"] == 1
    assert prof["request_types"]["generate_until"]["generated_tokens"] > 0
    for task, stream in prof["single_stream"].items():  # the serving probe (6 by default): 6 documents = 1 warm-up + 5 measured
        assert task in _E2E_TASKS and stream["prompts"] == 5 and stream["warmup"] == 1 and stream["streamed"] is True
        assert stream["ttft_ms"]["p50"] <= stream["e2e_ms"]["p50"] <= stream["e2e_ms"]["p95"] and stream["router_ms"]["n"] == 5
    assert set(prof["single_stream"]) == set(_E2E_TASKS)
    (written,) = (tmp_path / "logs_True").glob("profile_*.json")
    assert load_profile(written) == json.loads(json.dumps(prof))
    results = tmp_path / "results_x.json"
    results.write_text(json.dumps({"results": runs[True]["results"], "config": runs[True]["config"]}, default=str))
    printed = _print(results)
    assert "prof_e2e_mcqa" in printed and "Single-stream latency" in printed and "expert calls" in printed
