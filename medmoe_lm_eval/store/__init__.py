"""The results store: the only code that knows the on-disk result schema.

Owns: finding results files, reading them into records (``RunInfo``, ``ResultsSet``) and the tidy
frame, routing logs, and deciding which run is the latest. Reading never trusts a file: a bad
one becomes a ``ReadIssue``. May use: ``quantization``, ``harness``, ``profiling``, ``benchmarks``
and the foundation; never ``analysis`` or anything above it.
"""
