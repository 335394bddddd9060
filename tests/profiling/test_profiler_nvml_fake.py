"""The NVML path against a stand-in ``pynvml`` module (no NVIDIA GPU exists on this machine).

The stand-in mirrors the parts of nvidia-ml-py the profiler calls, with the same error class
shape (``NVMLError(value)`` and ``NVML_ERROR_*`` codes). Its energy counter advances with the
clock in 20 ms steps like the real one, so the profiler's arithmetic (wrap, fallbacks, per-task
attribution) runs on moving figures. Every case checks the profiler keeps working and names
what went wrong. CPU work in the tracked windows is real (sleeps and arithmetic on this host).
"""

from __future__ import annotations

import os
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from medmoe_lm_eval.profiling import energy
from medmoe_lm_eval.profiling.nvml import nvml_index
from medmoe_lm_eval.profiling.profiler import Profiler

NOT_SUPPORTED, NO_PERMISSION, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, GPU_IS_LOST = 3, 4, 9, 12, 15
_MESSAGES = {
    NOT_SUPPORTED: "Not Supported",
    NO_PERMISSION: "Insufficient Permissions",
    DRIVER_NOT_LOADED: "Driver Not Loaded",
    LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    GPU_IS_LOST: "GPU is lost",
}
GiB = 2**30


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int | None


@dataclass
class MemInfo:
    total: int
    used: int
    free: int


def fake_nvml(
    *,
    init_error: int | None = None,
    count: int = 1,
    watts: float = 250.0,
    energy_start_mj: int = 1_000_000,
    energy: Callable[[], int] | None = None,
    energy_error: int | None = None,
    power_error_every: int = 0,
    processes: Callable[[], list[Proc]] | None = None,
    device_used: int = 3 * GiB,
) -> types.ModuleType:
    """A ``pynvml`` stand-in. The counter reads ``energy_start_mj + watts * t`` (mod 2**64) in 20 ms steps."""
    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError
    codes = {"NOT_SUPPORTED": NOT_SUPPORTED, "NO_PERMISSION": NO_PERMISSION, "DRIVER_NOT_LOADED": DRIVER_NOT_LOADED}
    codes |= {"LIBRARY_NOT_FOUND": LIBRARY_NOT_FOUND, "GPU_IS_LOST": GPU_IS_LOST}
    for name, value in codes.items():
        setattr(mod, f"NVML_ERROR_{name}", value)
    t0 = time.perf_counter()
    mod.calls = {"init": 0, "shutdown": 0, "energy": 0, "power": 0, "handle": []}

    def init() -> None:
        mod.calls["init"] += 1
        if init_error is not None:
            raise NVMLError(init_error)

    def counter(handle: object) -> int:
        mod.calls["energy"] += 1
        if energy_error is not None:
            raise NVMLError(energy_error)
        if energy is not None:
            return energy()
        steps = int((time.perf_counter() - t0) / 0.02)
        return (energy_start_mj + int(watts * steps * 20)) % 2**64  # W * 20 ms = mJ per step

    def power(handle: object) -> int:
        mod.calls["power"] += 1
        if power_error_every and mod.calls["power"] % power_error_every == 0:
            raise NVMLError(GPU_IS_LOST)
        return int(watts * 1000)

    def handle_by_index(i: int) -> str:
        mod.calls["handle"].append(i)
        return f"gpu{i}"

    def handle_by_uuid(uuid: str) -> str:
        mod.calls["handle"].append(uuid)
        return uuid

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: mod.calls.__setitem__("shutdown", mod.calls["shutdown"] + 1)
    mod.nvmlDeviceGetCount = lambda: count
    mod.nvmlDeviceGetHandleByIndex = handle_by_index
    mod.nvmlDeviceGetHandleByUUID = handle_by_uuid
    mod.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"
    mod.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    mod.nvmlDeviceGetTotalEnergyConsumption = counter
    mod.nvmlDeviceGetPowerUsage = power
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: processes() if processes else []
    mod.nvmlDeviceGetMemoryInfo = lambda h: MemInfo(80 * GiB, device_used, 80 * GiB - device_used)
    return mod


@pytest.fixture(autouse=True)
def no_rapl(tmp_path, monkeypatch):
    """RAPL absent, so the CPU fallback's reason is the same on every host."""
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path / "no-powercap")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(200))


def _run(tasks: dict[str, float] | None = None, interval_ms: float = 10, device: str = "cuda:0") -> dict:
    """A profiled session whose tracked batches do real CPU work for the given seconds."""
    prof = Profiler(interval_ms=interval_ms, device=device)
    prof.start()
    for task, seconds in (tasks or {"t": 0.1}).items():
        with prof.track(expert="e", request_type="loglikelihood", task=task, n_requests=4, prompt_tokens=40):
            _busy(seconds)
    prof.stop()
    return prof.report()


def _assert_cpu_figures(report: dict) -> None:
    assert report["memory"]["peak_rss_bytes"] > 0
    assert report["total"]["requests"] > 0 and report["total"]["batch_latency_ms"]["p50"] > 0


# -- NVML cannot be used: the CPU figures remain and the error is named ------------------------------


def test_no_library_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    report = _run()
    _assert_cpu_figures(report)
    assert report["device"] == "cuda:0" and report["memory"]["gpu"] is None
    assert "pynvml is not importable" in report["memory"]["gpu_error"]
    assert report["energy"]["joules"] is None
    # a GPU expert's energy is the GPU's: without NVML it is unknown, never read from RAPL instead
    assert report["energy"]["reason"].startswith("nvml: pynvml is not importable") and report["energy"]["source"] is None
    assert report["hardware"]["gpu_name"] is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (NO_PERMISSION, "nvmlInit: Insufficient Permissions (NVML_ERROR_NO_PERMISSION)"),
        (DRIVER_NOT_LOADED, "nvmlInit: Driver Not Loaded (NVML_ERROR_DRIVER_NOT_LOADED)"),
        (LIBRARY_NOT_FOUND, "nvmlInit: NVML Shared Library Not Found (NVML_ERROR_LIBRARY_NOT_FOUND)"),
    ],
)
def test_init_error_fake_nvml(monkeypatch, code, expected):
    nvml = fake_nvml(init_error=code)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    report = _run()
    _assert_cpu_figures(report)
    assert report["memory"]["gpu_error"] == expected and report["memory"]["gpu"] is None
    assert expected in report["energy"]["reason"]
    assert nvml.calls["shutdown"] == 0  # nothing to shut down after a failed init


def test_no_device_fake_nvml(monkeypatch):
    nvml = fake_nvml(count=0)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    report = _run()
    _assert_cpu_figures(report)
    assert "NVML sees no GPU" in report["memory"]["gpu_error"]
    assert nvml.calls["init"] == nvml.calls["shutdown"] == 1


def test_device_beyond_count_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(count=1))
    report = _run(device="cuda:3")
    assert "cuda:3 maps to NVML GPU 3, but NVML sees 1" in report["memory"]["gpu_error"]


# -- NVML works: counters, fallbacks, memory -----------------------------------------------------------


def test_normal_readings_fake_nvml(monkeypatch):
    pid = os.getpid()
    sizes = iter([1 * GiB] * 3)
    nvml = fake_nvml(watts=300.0, processes=lambda: [Proc(12345, 9 * GiB), Proc(pid, next(sizes, int(1.5 * GiB)))])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    report = _run({"short": 0.1, "long": 0.3})
    _assert_cpu_figures(report)
    hw, gpu, en = report["hardware"], report["memory"]["gpu"], report["energy"]
    assert (hw["gpu_name"], hw["gpu_driver"], hw["gpu_count"]) == ("NVIDIA H100 80GB HBM3", "550.54.15", 1)
    assert gpu["nvml_peak_used_bytes"] == int(1.5 * GiB) and gpu["nvml_scope"] == "process"
    assert gpu["torch_max_allocated_bytes"] is None  # torch here has no CUDA: never touched
    assert report["memory"]["gpu_error"] is None and report["sampler"]["errors"] == []
    assert en["source"] == "nvml_energy_counter" and en["reason"] is None
    # 300 W over the sampled span, within one 20 ms counter step at each end
    span = report["wall_s"]
    assert en["joules"] == pytest.approx(300.0 * span, abs=300.0 * 0.045)
    assert en["mean_power_w"] == pytest.approx(300.0, rel=0.25)
    short, long = report["tasks"]["short"]["energy_j"], report["tasks"]["long"]["energy_j"]
    assert 0 < short < long and short + long <= en["joules"] + 1e-9
    assert en["batches_j"] == pytest.approx(short + long)
    assert en["per_request_j"] == pytest.approx((short + long) / 8)
    assert report["experts"]["e"]["energy_j"] == pytest.approx(short + long)
    assert nvml.calls["init"] == nvml.calls["shutdown"] == 1


def test_device_without_energy_counter_fake_nvml(monkeypatch):
    """Pre-Volta GPUs: the counter is NotSupported, so power readings are integrated."""
    nvml = fake_nvml(watts=120.0, energy_error=NOT_SUPPORTED)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    report = _run({"t": 0.2})
    en = report["energy"]
    assert en["source"] == "nvml_power_integral"
    assert "nvmlDeviceGetTotalEnergyConsumption: Not Supported (NVML_ERROR_NOT_SUPPORTED)" in en["reason"]
    assert en["joules"] == pytest.approx(120.0 * report["wall_s"], rel=0.05)
    assert report["tasks"]["t"]["energy_j"] == pytest.approx(120.0 * report["tasks"]["t"]["wall_s"], rel=0.05)
    assert nvml.calls["energy"] == 1  # not asked again once unsupported
    assert report["sampler"]["errors"] == [] and any("Not Supported" in n for n in report["sampler"]["notes"])


def test_counter_wrap_fake_nvml(monkeypatch):
    """The 64-bit millijoule counter wraps during the run: the joules stay right, not ~1.8e16."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(watts=200.0, energy_start_mj=2**64 - 50))
    report = _run({"t": 0.25})
    en = report["energy"]
    assert en["source"] == "nvml_energy_counter"
    assert en["joules"] == pytest.approx(200.0 * report["wall_s"], abs=200.0 * 0.045)


def test_counter_that_does_not_advance_falls_back_to_power_fake_nvml(monkeypatch):
    """A window shorter than the counter's update period reads 0: integrate power instead."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(watts=80.0, energy=lambda: 5_000))
    report = _run({"t": 0.05})
    en = report["energy"]
    assert en["source"] == "nvml_power_integral" and "did not advance" in en["reason"]
    assert en["joules"] == pytest.approx(80.0 * report["wall_s"], rel=0.1)


def test_process_not_visible_uses_device_memory_fake_nvml(monkeypatch):
    """In a container NVML may list our process under another pid, or without a figure."""
    nvml = fake_nvml(processes=lambda: [Proc(os.getpid(), None), Proc(1, 2 * GiB)], device_used=5 * GiB)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpu = _run()["memory"]["gpu"]
    assert gpu["nvml_peak_used_bytes"] == 5 * GiB and gpu["nvml_scope"] == "device"


def test_transient_reading_errors_are_named_fake_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(power_error_every=2))
    report = _run({"t": 0.1})
    _assert_cpu_figures(report)
    (error,) = report["sampler"]["errors"]
    assert error.startswith("nvmlDeviceGetPowerUsage: GPU is lost (NVML_ERROR_GPU_IS_LOST)")
    assert report["energy"]["source"] == "nvml_energy_counter"


def test_restart_counts_only_active_windows_fake_nvml(monkeypatch):
    nvml = fake_nvml(watts=100.0)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    prof = Profiler(interval_ms=10, device="cuda:0")
    for _ in range(2):
        prof.start()
        _busy(0.15)
        prof.stop()
        time.sleep(0.2)  # the GPU keeps drawing power, but the profiler is stopped
    report = prof.report()
    assert nvml.calls["init"] == nvml.calls["shutdown"] == 2
    assert report["energy"]["joules"] == pytest.approx(100.0 * report["wall_s"], abs=100.0 * 0.09)


def test_cuda_visible_devices_picks_the_nvml_gpu_fake_nvml(monkeypatch):
    nvml = fake_nvml(count=4)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    _run(device="cuda:1")
    assert nvml.calls["handle"] == [3]  # cuda:1 is NVML's GPU 3
    assert nvml_index("cuda:0", {"CUDA_VISIBLE_DEVICES": "GPU-8f6c"}) == "GPU-8f6c"
    assert nvml_index("cuda", {}) == 0


# -- each expert on its own device; idle power -------------------------------------------------------


def _rapl_zone(root, max_uj: int = 2**40):
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "energy_uj").write_text("0\n")
    return zone / "energy_uj"


def test_each_expert_is_charged_to_its_own_device_fake_nvml(tmp_path, monkeypatch):
    """A GPU expert's joules and memory from NVML; a CPU-only one's (a GGUF file with n_gpu_layers: 0
    on a GPU host) from RAPL and RSS: the 300 W the GPU draws meanwhile is not charged to it."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(watts=300.0, processes=lambda: [Proc(os.getpid(), 2 * GiB)]))
    counter = _rapl_zone(tmp_path / "powercap")
    monkeypatch.setattr(energy, "POWERCAP_ROOT", tmp_path / "powercap")
    prof = Profiler(interval_ms=5, device="cuda:0")
    prof.start()
    for name, device in (("gpu-expert", "cuda:0"), ("cpu-expert", "cpu")):
        with prof.expert_load(name, device=device):
            pass
    with prof.track(expert="gpu-expert", request_type="loglikelihood", task="t", n_requests=4, prompt_tokens=40):
        _busy(0.1)
    uj = 0
    with prof.track(expert="cpu-expert", request_type="loglikelihood", task="t", n_requests=2, prompt_tokens=20):
        for _ in range(20):  # RAPL moves 20 x 5 mJ = 0.1 J while the CPU expert works
            uj += 5_000
            counter.write_text(f"{uj}\n")
            time.sleep(0.005)
    prof.stop()
    report = prof.report()
    gpu, cpu = report["experts"]["gpu-expert"], report["experts"]["cpu-expert"]
    assert (gpu["device"], gpu["energy_source"], gpu["memory_source"]) == ("cuda:0", "nvml_energy_counter", "nvml")
    assert (cpu["device"], cpu["energy_source"], cpu["memory_source"]) == ("cpu", "rapl", "rss")
    assert cpu["energy_j"] == pytest.approx(0.1, abs=0.011)
    assert gpu["energy_j"] == pytest.approx(300.0 * gpu["wall_s"], abs=300.0 * 0.045)
    assert report["tasks"]["t"]["energy_j"] == pytest.approx(gpu["energy_j"] + cpu["energy_j"])
    assert report["tasks"]["t"]["energy_devices"] == ["cpu", "cuda:0"] and report["energy"]["source"] == "nvml_energy_counter+rapl"
    per_device = report["memory"]["per_device"]
    assert per_device["cuda:0"]["nvml_peak_used_bytes"] == 2 * GiB and per_device["cpu"]["source"] == "rss"


def test_cpu_only_expert_on_a_gpu_host_reads_no_gpu_counter_fake_nvml(monkeypatch):
    """Only a CPU expert ran: no GPU memory or energy in its figures, though NVML reads fine (RAPL is absent here)."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(watts=300.0, processes=lambda: [Proc(os.getpid(), 2 * GiB)]))
    prof = Profiler(interval_ms=10, device="cuda:0")
    prof.start()
    with prof.expert_load("gguf-cpu", device="cpu"):
        pass
    with prof.track(expert="gguf-cpu", request_type="loglikelihood", task="t", n_requests=3, prompt_tokens=30):
        _busy(0.1)
    prof.stop()
    report = prof.report()
    assert report["memory"]["gpu"] is None and list(report["memory"]["per_device"]) == ["cpu"]
    assert report["energy"]["joules"] is None and report["energy"]["source"] is None and report["energy"]["reason"].startswith("rapl:")
    assert report["tasks"]["t"]["energy_j"] is None and report["experts"]["gguf-cpu"]["energy_source"] is None


def _switching_counter(watts: float) -> tuple[Callable[[], int], Callable[[float], None]]:
    """An energy counter (mJ) integrating the current draw exactly, and a switch for that draw."""
    import threading

    lock = threading.Lock()
    state = {"watts": watts, "t": time.perf_counter(), "mj": 0.0}

    def read() -> int:
        with lock:
            now = time.perf_counter()
            state["mj"] += state["watts"] * (now - state["t"]) * 1000.0
            state["t"] = now
            return int(state["mj"])

    def switch(new_watts: float) -> None:
        read()
        state["watts"] = new_watts

    return read, switch


def test_idle_power_is_measured_before_the_run_and_subtracted_fake_nvml(monkeypatch):
    """Idle 50 W, 200 W while working: a batch of d seconds costs 200 d J gross and (200 - 50) d J net."""
    read, switch = _switching_counter(50.0)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(energy=read))
    prof = Profiler(interval_ms=10, device="cuda:0", idle_s=0.3)
    prof.start()  # measures 0.3 s of idle draw first
    switch(200.0)
    time.sleep(0.03)  # samples on both sides of the switch stay out of the batch's window
    # the counter is read every 10 ms, so each edge of the batch is known to about a sample: the
    # error is absolute, up to two sample intervals at 200 W (4 J) when a busy machine delays the
    # sampler (seen: 1.9 J), whatever the batch's length; a 1 s batch keeps that under 3% of its net
    with prof.track(expert="e", request_type="loglikelihood", task="t", n_requests=5, prompt_tokens=50):
        _busy(1.0)
    prof.stop()
    report = prof.report()
    device = report["energy"]["devices"]["cuda:0"]
    seconds = report["tasks"]["t"]["wall_s"]
    edges = 200.0 * 2 * 0.010
    assert device["idle_w"] == pytest.approx(50.0, rel=0.01) and device["idle_source"] == "nvml_counter" and device["idle_s"] >= 0.3
    assert device["batches_gross_j"] == pytest.approx(200.0 * seconds, abs=edges)
    assert report["tasks"]["t"]["energy_j"] == pytest.approx(150.0 * seconds, abs=edges)
    assert report["energy"]["per_request_j"] == pytest.approx(150.0 * seconds / 5, abs=edges / 5) and report["energy"]["idle_w"] == device["idle_w"]
    unmeasured = _run({"t": 0.05})["energy"]["devices"]["cuda:0"]  # idle_s=0: nothing measured, nothing subtracted
    assert unmeasured["idle_w"] is None and unmeasured["batches_j"] == unmeasured["batches_gross_j"]
