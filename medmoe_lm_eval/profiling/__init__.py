"""The pieces behind :mod:`medmoe_lm_eval.profiler`, one concern per module.

``stats`` turns timed batches into latency and throughput figures, ``energy`` turns raw
counters and power readings into joules over time, ``nvml`` and ``memory`` read the GPU and the
process, ``sampler`` polls them in a background thread, ``hardware`` records what the run ran on
and ``render`` prints a profile. Nothing here imports torch at import time: a CPU run never
touches CUDA, and the leaderboard can render a profile without torch installed.
"""


class ProfileError(ValueError):
    """A file is unreadable or holds no profile; the message is one line naming the file."""
