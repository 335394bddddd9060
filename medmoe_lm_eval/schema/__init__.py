"""The results format medmoe writes, defined once: every record kind, its fields and its version.

Three kinds of record go to disk beside lm-eval's own results:

* the run record (:mod:`.run_record`), under ``results["config"]["medmoe"]``: candidate, adapter,
  experts, routing summary, where the routing log and profile went;
* the routing row (:mod:`.routing_row`), one line of ``routing_*.jsonl`` per routing decision;
* the profile (:mod:`.profile`), under ``results["config"]["medmoe_profile"]`` and in
  ``profile_*.json``: latency, throughput, memory, energy.

The harness and the profiler write through these classes and the results store reads through
them; code above the store sees only what the store hands up (``RunInfo.record``, frames). Each
record carries ``schema_version`` (:mod:`.versions`): a reader reads every version up to its own,
a record without one is the layout written before versions were (it reads as it always did), and
any other value is one line naming the file, never an exception. This is the lowest floor of the
package: it imports nothing else of medmoe's, so every layer may use it.
"""

from __future__ import annotations

from medmoe_lm_eval.schema.versions import VERSION_KEY, version_problem

__all__ = ["VERSION_KEY", "version_problem"]
