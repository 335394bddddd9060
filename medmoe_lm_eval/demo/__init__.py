"""The offline demo (``medmoe demo``): tiny experts built from the bundled samples, every kind of
candidate evaluated through lm-eval, ranked and checked against expectations.

Owns: the tiny-model builders (``tiny``, ``builder``), in-process evaluation of one candidate
(``runs``), the pipeline and its report. May use: every layer below it, the CLI's tables included.
"""
