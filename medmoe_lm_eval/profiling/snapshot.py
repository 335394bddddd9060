"""What a :class:`~medmoe_lm_eval.profiling.profiler.Profiler` has measured, at one moment.

The report (:mod:`~medmoe_lm_eval.profiling.report`) reads only this record, never the
profiler's own state: the profiler depends on the report and not the other way round, and the
profiler can change how it keeps its figures without breaking the report. Lists and mappings
are copies taken when the snapshot is made; the meters and the served-request ledger are the
live objects (an NVML handle cannot be copied), which the report only queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from medmoe_lm_eval.profiling.meters import Meter
from medmoe_lm_eval.profiling.served import ServedLedger
from medmoe_lm_eval.profiling.single_stream import StreamSample
from medmoe_lm_eval.profiling.stats import BatchRecord

#: One task's serving probe: its samples, how many of them were warm-up, and the probe's wall time.
StreamEntry = tuple[tuple[StreamSample, ...], int, float | None]


@dataclass(frozen=True)
class ProfilerSnapshot:
    """Everything the profile is built from: timings, loads, counters and the meters that hold
    each device's energy and memory series.

    ``expert_devices`` maps each expert declared with a device to its meter key;
    ``default_device`` is the meter key of the run's own device, used for every other expert
    (:meth:`expert_device`). ``opened`` is ``False`` when the profiler tracked calls without
    ever being started, so the busy time is the only wall time there is.
    """

    device: str
    interval_ms: float
    started_at: str | None
    opened: bool
    wall_s: float
    records: tuple[BatchRecord, ...]
    failed_batches: int
    loads: Mapping[str, tuple[float, ...]]
    expert_devices: Mapping[str, str]
    default_device: str
    served: ServedLedger
    truncated: Mapping[tuple[str | None, str], int]
    streams: Mapping[str, StreamEntry]
    router: tuple[tuple[float, int], ...]
    notes: tuple[str, ...]
    sampler_samples: int
    sampler_cpu_s: float
    sampler_errors: tuple[str, ...]
    meters: Mapping[str, Meter]
    torch_peaks: Mapping[str, int] | None
    peak_rss_bytes: int
    peak_rss_source: str
    backend_peak_rss_bytes: Mapping[str, int]

    def expert_device(self, expert: str) -> str:
        """The meter key of ``expert``'s device; the run's own device for one never declared."""
        return self.expert_devices.get(expert) or self.default_device
