"""``emox-edge serve``: an HTTP and WebSocket API on the device, with a web page (docs/serve.md).

    from emox_edge.serve import ServeOptions, Server, create_app
    import emox_edge

    options = ServeOptions(port=0)                       # a free loopback port
    with emox_edge.load() as analyzer, Server(create_app([analyzer], options), options) as server:
        print(server.url)                                # http://127.0.0.1:PORT/

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, websockets): ``pip install 'emox-edge[serve]'``.
"""

from __future__ import annotations

from emox_edge.serve.options import ServeOptions, is_loopback

__all__ = ["ServeOptions", "Server", "create_app", "is_loopback", "serve_forever"]


def __getattr__(name: str):
    if name == "create_app":
        from emox_edge.serve.app import create_app

        return create_app
    if name in ("Server", "serve_forever"):
        from emox_edge.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'emox_edge.serve' has no attribute {name!r}")
