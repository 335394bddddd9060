"""The lm-eval model ``medmoe`` and everything it composes to answer a request.

Owns: the adapter schema (``config``), the model (``model``), routing (``routing/``: gate, scorers,
router training and evaluation), fusion of expert answers, expert residency (``pool``), the routing
log, data parallelism, the expert backends (``backends/``: hf, gguf, remote), live consultation and
which recorded candidates it may run (``consult_trust``).
May use: ``profiling``, ``benchmarks`` and the foundation modules (``paths``, ``devices``,
``jsonio``, ``console``). Never the store, analysis, CLI or leaderboard: a candidate runs the same
whether a command, a test or lm-eval's own CLI started it.
"""
