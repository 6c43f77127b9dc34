"""The lite bundle's runtime perception: ``expression`` (FER on face crops), ``prosody`` (voice features
and heuristic affect), ``perception`` (face + voice fusion), ``injection`` (perception -> language core
prompt), ``tables`` (``data/lite.json``). The bundle kind itself is ``emox_edge.kinds.lite``; building
the bundle is ``converters.lite``. See docs/lite-bundle.md.
"""
