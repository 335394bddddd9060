"""Making quantized candidates: GPTQ/AWQ checkpoints, GGUF files, and reading what a checkpoint is.

Split by concern so that importing one path never pulls in the libraries of another:
``info`` (no heavy imports), ``calibration`` (texts), ``gptq`` (gptqmodel), ``gguf_convert``
(``gguf``'s writer + llama.cpp's quantizer). ``medmoe_lm_eval.quantize`` is the CLI front.
"""
