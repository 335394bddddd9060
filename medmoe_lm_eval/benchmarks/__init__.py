"""Where benchmark rows come from and how answers are scored.

Owns: the benchmark registry, the data-source switch (hub, bundled sample, local folder), row
checks and hashing, the demo/router splits of the bundled samples (``bundled/``, with their
attribution), the shipped router's corpus from a data release folder (``router_corpus``), task
domains, metric directions, metrics and the sandbox that runs generated code (``sandbox``, its
bootstrap ``sandbox_child`` and its kernel layer ``isolation``).
May use: only the foundation modules (``paths``); it is the bottom layer, so every other layer
may read the same rows and score them the same way.
"""
