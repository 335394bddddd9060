"""Making quantized candidates: GPTQ/AWQ checkpoints and GGUF files, each with its adapter.

Split by concern so that importing one path never pulls in the libraries of another:
``calibration`` (texts), ``gptq`` (gptqmodel), ``gguf_convert`` (``gguf``'s writer + llama.cpp's
quantizer), and ``make``, which ties them together and writes the adapter. Reading what a
checkpoint *is* belongs to the backends that load it (``harness.backends.quant_info``).
May use: ``harness`` (the adapter schema, backend errors), ``profiling``, ``benchmarks`` and the
foundation. The ``medmoe quantize`` command lives in ``cli.quantize``.
"""
