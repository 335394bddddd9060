"""Profiling: what a candidate costs, measured the same way for every backend.

``profiler.Profiler`` wraps every backend call; the pieces behind it have one concern each.
May use: ``benchmarks`` and the foundation modules only, so every layer above can measure.

``stats`` turns timed batches into latency and throughput figures, ``energy`` turns raw
counters and power readings into joules over time, ``nvml`` and ``memory`` read the GPU and the
process, ``sampler`` polls them in a background thread, ``hardware`` records what the run ran on,
``snapshot`` holds what the profiler measured, the one thing ``report`` builds the profile from,
``render`` prints a profile, and ``merge`` joins the profiles of data-parallel ranks. Nothing here imports torch at import time: a CPU run never
touches CUDA, and the leaderboard can render a profile without torch installed.
"""


class ProfileError(ValueError):
    """A file is unreadable or holds no profile; the message is one line naming the file."""
