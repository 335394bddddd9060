"""Tiny random or briefly trained Llama models built locally in seconds (no hub, no GPU).

On the lowest floor so that the harness's tests, the benchmarks and the tiny demo all build their
stand-in models the same way without reaching up into ``demo``.
"""
