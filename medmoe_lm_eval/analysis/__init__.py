"""What is computed from the store: rankings, use cases, comparisons and routing analysis.

Owns: use-case definitions and ranking (per-task quality, coverage, HELM win rates, rank intervals,
Pareto fronts, hard limits), paired statistics between two candidates (bootstrap intervals,
McNemar, permutation tests, Holm), the tables every view draws, and routing analytics and regret.
May use: ``store`` and everything below it; it reads records, never files, so the board, the
terminal and the export agree.
"""
