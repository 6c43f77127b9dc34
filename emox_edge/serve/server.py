"""Run the app under uvicorn: in the foreground (``serve_forever``, the CLI) or in a thread (``Server``,
for tests, benchmarks and programs that embed the server)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from emox_edge.serve.options import ServeOptions

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'emox-edge[serve]'"


def require_server_packages() -> None:
    """Check that FastAPI, uvicorn, python-multipart and websockets can be imported.

    Raises:
        MissingDependencyError: one is missing; the message says how to install them.
    """
    import importlib

    from emox_edge.errors import MissingDependencyError

    missing = []
    for modules, package in ((("fastapi",), "fastapi"), (("uvicorn",), "uvicorn"), (("websockets",), "websockets"),
                             (("python_multipart", "multipart"), "python-multipart")):
        for module in modules:
            try:
                importlib.import_module(module)
                break
            except ImportError:
                continue
        else:
            missing.append(package)
    if missing:
        raise MissingDependencyError(f"emox-edge serve needs {', '.join(missing)}: {INSTALL_HINT}")


class _DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing handshake."
    after a WebSocket refused with an HTTP response (401/403/503), though the response went out
    (uvicorn 0.54). Every path of our WebSocket route accepts or refuses, so the line is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ASGI callable returned without completing handshake")


def _config(app: Any, options: ServeOptions):
    import uvicorn
    from uvicorn.config import WS_PROTOCOLS

    ws = "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"  # uvicorn >= 0.35
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialNoise) for f in error_log.filters):
        error_log.addFilter(_DenialNoise())
    return uvicorn.Config(app, host=options.host, port=options.port, ws=ws, http="h11", lifespan="on",
                          ws_max_size=options.max_message_bytes + 64, log_config=None, access_log=False,
                          timeout_graceful_shutdown=5)


def serve_forever(app: Any, options: ServeOptions) -> None:
    """Serve until Ctrl-C or SIGTERM (uvicorn's handlers; running clips finish first)."""
    import uvicorn

    config = _config(app, options)
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    host, port = sock.getsockname()[:2]
    log.info("emox-edge serve: http://%s:%d/ (page), ws://%s:%d/v1/stream%s", *(_shown(host), port) * 2,
             "" if options.token is None else "; a token is required")
    server.run(sockets=[sock])


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Server:
    """The app under uvicorn in a daemon thread, on ``options.port`` (0: a free port).

        with Server(create_app([analyzer], options), options) as server:
            print(server.url)   # http://127.0.0.1:PORT
    """

    def __init__(self, app: Any, options: ServeOptions) -> None:
        import uvicorn

        self.options = options
        self._config = _config(app, options)
        self._server = uvicorn.Server(self._config)
        self._server.install_signal_handlers = lambda: None  # uvicorn < 0.29 would install them from a thread
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{_shown(self.options.host)}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:]

    def start(self, timeout: float = 30.0) -> "Server":
        """Start serving; returns once the server accepts connections.

        Raises:
            RuntimeError: it did not start within ``timeout`` seconds (the log says why).
        """
        sock = self._config.bind_socket()
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="emox-serve")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
