"""Scale-out on Ray Serve: the same HTTP and WebSocket API as ``emox-edge serve``, with the analysis
spread over perception and language-core replicas on many machines (docs/scale-out.md).

    emox-edge serve --ray                                                     # a local Ray instance
    emox-edge serve --ray --address auto --replicas perception=4,language=1  # on a node of a cluster

Needs the ``ray`` extra (``pip install 'emox-edge[ray]'``). Importing this package imports no Ray:
``RayAnalysis`` and ``RemoteAnalyzer`` do, when used.
"""

from __future__ import annotations

from emox_edge.scaleout.options import (ReplicaLostError, ScaleoutError, ScaleoutOptions, parse_replicas, parse_roles,
                                       require_ray)

__all__ = ["RayAnalysis", "RemoteAnalyzer", "ReplicaLostError", "ScaleoutError", "ScaleoutOptions", "parse_replicas",
           "parse_roles", "require_ray", "serve_on_ray"]


def __getattr__(name: str):
    if name in ("RayAnalysis", "serve_on_ray"):
        from emox_edge.scaleout import cluster

        return getattr(cluster, name)
    if name == "RemoteAnalyzer":
        from emox_edge.scaleout.remote import RemoteAnalyzer

        return RemoteAnalyzer
    raise AttributeError(f"module 'emox_edge.scaleout' has no attribute {name!r}")
