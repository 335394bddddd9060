"""The results store: the only code that knows the on-disk result schema.

Owns: finding results files, reading them into records (``RunInfo``, ``ResultsSet``) and the tidy
frame, each run's comparability key and data source (``run_key``), deciding which run stands for
a candidate's task ("latest wins" only inside one key, ``latest``), per-item records from lm-eval's
per-sample logs (``samples``), and routing logs. Reading never trusts a file: a bad one becomes a
``ReadIssue``. May use: ``quantization``, ``harness``, ``profiling``, ``benchmarks`` and the
foundation; never ``analysis`` or anything above it.
"""
