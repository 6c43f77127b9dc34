"""Converters: Nano-EmoX checkpoints -> GGUF (language core) and ONNX (encoders), plus bundles.

Nano-EmoX conversion needs the ``[convert]`` extra (torch, transformers, ...); ``converters.lite`` (the default
bundle's builder) needs no torch and is the only part the runtime calls, to build that bundle on first use.
"""
