"""The lite bundle: real pretrained models shipped inside registry packages, run like a Nano-EmoX bundle.

Modules: ``sources`` (pinned files, fetching, cache), ``build`` (assemble the bundle), ``default``
(build on first use), ``keras_h5`` / ``fer_onnx`` / ``fer_reference`` (mini-Xception hdf5 -> ONNX,
int8, numpy parity), ``expression`` (FER on face crops), ``prosody`` (voice features and heuristic
affect), ``perception`` (face + voice fusion), ``injection`` (perception -> language core prompt),
``pipeline`` (``LitePipeline``), ``tables`` (``data/lite.json``). See docs/lite-bundle.md.
"""
