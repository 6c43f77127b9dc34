"""emox-edge benchmarks (run from a source checkout): ``python -m benchmarks [--quick | --full]``.

See ``benchmarks/run.py`` and ``docs/benchmarks.md``.
"""
