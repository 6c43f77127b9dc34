"""The FastAPI application of ``emox-edge serve``: routes, authentication, errors as JSON.

Importing this module needs the ``serve`` extra (``pip install 'emox-edge[serve]'``).

    GET  /healthz       {"ok": true}                       (no token needed)
    GET  /              the web page (static files inside the package, no CDN)
    GET  /v1/info       bundle, kind, tasks and variants, device, versions, server limits
    POST /v1/analyze    multipart: file, tasks, subtitle -> the ClipResult dict (a list for several clips)
    WS   /v1/stream     a live session (emox_edge.serve.protocol, docs/serve.md)

Every error is ``{"error": message, "status": code}``; a traceback is logged, never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from emox_edge.errors import BadInputError, InputTypeError
from emox_edge.serve.options import ServeOptions
from emox_edge.serve.security import Guard
from emox_edge.serve.session import StreamSession
from emox_edge.serve.upload import UploadError, receive_upload
from emox_edge.serve.worker import BatchOptions, Job, WorkerPool

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PROTOCOL_VERSION = 1


def create_app(analyzers: list[Any], options: ServeOptions):
    """A FastAPI app serving ``analyzers`` (one worker thread each; they stay open, their owner closes them)."""
    if not analyzers:
        raise ValueError("create_app needs at least one analyzer")
    sessions: set[StreamSession] = set()
    pool = WorkerPool(list(analyzers), queue_clips=options.queue_clips,
                      batch=BatchOptions(max_clips=options.batch_clips, delay_ms=options.batch_delay_ms),
                      sessions=lambda: sum(not s.ending or s.outstanding > 0 for s in list(sessions)))
    guard = Guard(options)
    info = dict(analyzers[0].info())
    uploads = {"active": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool.start()
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="emox-edge", version=info.get("versions", {}).get("emox_edge", ""), lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool, app.state.sessions = pool, sessions

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        return error(422, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "invalid request")

    @app.exception_handler(Exception)
    async def _internal_error(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__}), logged on the server")

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(guard.response_headers)
        return response

    def refuse(request: Request) -> JSONResponse | None:
        status, message = guard.check(request.headers, query=None)
        if status:
            return error(status, message, {"WWW-Authenticate": "Bearer"} if status == 401 else None)
        return None

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/v1/info")
    async def v1_info(request: Request):
        if (denied := refuse(request)) is not None:
            return denied
        server = {"protocol": PROTOCOL_VERSION, "workers": len(analyzers), "streams": len(sessions),
                  **{k: getattr(options, k) for k in ("max_streams", "max_upload_mb", "max_message_kb", "queue_clips",
                                                       "faces_fps", "clip_frames", "max_window_s", "batch_clips",
                                                       "batch_delay_ms")},
                  "batching": pool.batch_stats()}
        return {**info, "server": server}

    @app.post("/v1/analyze")
    async def v1_analyze(request: Request):
        if (denied := refuse(request)) is not None:
            return denied
        if uploads["active"] >= options.max_streams:
            return error(503, f"the server is analysing {uploads['active']} uploads already (--max-streams); "
                              "retry later")
        uploads["active"] += 1
        upload = None
        try:
            headers = request.headers
            upload = await receive_upload(headers.get("content-type", ""), headers.get("content-length"),
                                          request.stream(), max_bytes=options.max_upload_bytes)
            tasks = upload.fields.get("tasks", "emotion")
            try:
                analyzers[0].check_tasks(tasks)  # reads the bundle's task tables only
            except (ValueError, TypeError) as exc:
                return error(422, f"tasks: {exc}")
            result = await _analyze_upload(pool, upload, tasks, upload.fields.get("subtitle", ""))
            return JSONResponse(_jsonable(result))
        except UploadError as exc:
            return error(exc.status, str(exc))
        except ConnectionError as exc:  # a remote analyzer's replica was lost (emox_edge.scaleout): retry later
            log.warning("upload: %s", exc)
            return error(503, str(exc))
        except (BadInputError, InputTypeError, FileNotFoundError) as exc:  # the file's fault; bugs go to 500
            name = upload.filename if upload else "upload"
            message = _hide_paths(str(exc), name)
            return error(422, message if name in message else f"{name}: {message}")
        finally:
            uploads["active"] -= 1
            if upload is not None:
                upload.discard()  # a file handed to a worker is the worker's to delete

    @app.websocket("/v1/stream")
    async def v1_stream(websocket: WebSocket):
        status, message = guard.check(websocket.headers, query=websocket.query_params)
        if not status and len(sessions) >= options.max_streams:
            status, message = 503, f"{len(sessions)} streams are running, the most this server takes (--max-streams)"
        if status:
            await _deny(websocket, status, message)
            return
        await websocket.accept()
        session = StreamSession(pool=pool, options=options, loop=asyncio.get_running_loop(),
                                check_tasks=analyzers[0].check_tasks, peers=lambda: list(sessions))
        sessions.add(session)
        sender = asyncio.create_task(_send_loop(websocket, session))
        finisher = asyncio.create_task(_finish(session))
        try:
            await _receive_loop(websocket, session)
        finally:
            session.close()
            sessions.discard(session)
            finisher.cancel()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    return app


async def _analyze_upload(pool: WorkerPool, upload, tasks: str, subtitle: str):
    """Run ``analyze`` on the uploaded file on a worker; the worker deletes the file when done."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    path = upload.path
    owner = pool.new_owner("upload")

    def run(analyzer):
        try:
            return analyzer.analyze(str(path), tasks, subtitle=subtitle)
        finally:
            path.unlink(missing_ok=True)

    def done(value, exc):
        loop.call_soon_threadsafe(_settle, future, value, exc)

    pool.scheduler.put(Job(owner, run, done), limit=1)
    upload.path = None  # the worker's now
    try:
        result = await asyncio.shield(future)
    except asyncio.CancelledError:  # the client went away: drop the job if it has not started
        if pool.scheduler.remove(owner):
            path.unlink(missing_ok=True)
        raise
    if isinstance(result, list):
        return [r.to_dict() for r in result]
    return result.to_dict()


def _hide_paths(message: str, name: str) -> str:
    """``message`` with the server's temporary upload paths replaced by the uploaded file's name."""
    import re

    return re.sub(r"\S*emox-upload-[^\s:'\"]*", name, message)


def _settle(future: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


async def _deny(websocket, status: int, message: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP response when the server supports that, else close."""
    try:
        await websocket.send_denial_response(JSONResponse({"error": message, "status": status}, status_code=status))
    except (AttributeError, RuntimeError):  # no websocket.http.response extension: the client sees 403
        await websocket.close(code=1008, reason=message[:120])


async def _receive_loop(websocket, session: StreamSession) -> None:
    from emox_edge.serve.protocol import ProtocolError

    while True:
        try:
            message = await websocket.receive()
        except RuntimeError:  # closed by the sender loop
            return
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("bytes") is not None:
                session.on_binary(message["bytes"])
            elif message.get("text") is not None:
                session.on_text(message["text"])
        except ProtocolError as exc:
            session.push({"type": "error", "message": str(exc)})
        except Exception as exc:
            log.error("session %s: a message failed", session.id, exc_info=exc)
            session.push({"type": "error", "message": f"internal error ({type(exc).__name__}), logged on the server"})


async def _send_loop(websocket, session: StreamSession) -> None:
    while True:
        message = await session.outbox.get()
        if message is None:
            await websocket.close(code=1000)
            return
        await websocket.send_text(json.dumps(_jsonable(message), allow_nan=False))


async def _finish(session: StreamSession) -> None:
    await session.finished.wait()
    session.push({**session.stats(), "type": "session.end"})
    session.outbox.put_nowait(None)


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain, and NaN/inf as null (browsers reject them)."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
