"""What is computed from the store: rankings, use cases, comparisons and routing analysis.

Owns: use-case definitions and ranking (win rates, Pareto fronts, hard limits), the tables every
view draws, and routing analytics and regret. May use: ``store`` and everything below it; it
reads records, never files, so the board, the terminal and the export agree.
"""
