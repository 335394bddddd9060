"""medmoe-lm-eval: medical, legal and code candidates, quantized copies and gated mixtures of
experts, evaluated through lm-evaluation-harness with one adapter, one profiler and one results format.

This module stays import-light on purpose: the ``.pth`` start-up hook imports the package on
every Python start, so nothing here may pull in torch, transformers or lm-eval.
"""

__version__ = "0.1.0"

MODEL_NAME = "medmoe"
MODEL_TARGET = "medmoe_lm_eval.harness.model:MedMoELM"
