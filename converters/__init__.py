"""Converters: Nano-EmoX checkpoints -> GGUF (language core) and ONNX (encoders), plus bundles.

Needs the ``[convert]`` extra (torch, transformers, ...). Nothing here is imported by the runtime.
"""
