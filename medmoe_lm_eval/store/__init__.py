"""The results store: the only code that reads results from disk.

What medmoe writes (the run record, routing-log rows, the profile) is laid out and versioned in
:mod:`medmoe_lm_eval.schema`, and the store reads those through it; lm-eval's own results and
per-sample logs it reads itself. Everything above works on the records and frames it hands up,
never on the files.

Owns: finding results files, reading them into records (``RunInfo``, ``ResultsSet``) and the tidy
frame, each run's comparability key and data source (``run_key``), deciding which run stands for
a candidate's task ("latest wins" only inside one key, ``latest``), per-item records from lm-eval's
per-sample logs (``samples``), routing logs, and profiles (``profiles``). Reading never trusts a
file: a bad one, or a record of a version this code does not read, becomes a ``ReadIssue``. May
use: ``quantization``, ``harness``, ``profiling``, ``benchmarks``, the foundation and the schema;
never ``analysis`` or anything above it.
"""
