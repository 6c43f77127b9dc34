"""``RemoteAnalyzer``: what ``emox_edge.serve`` takes for an analyzer, with the work done by the
perception and language replicas of Ray Serve; it composes the two.

The server's worker threads call it as they would call a local analyzer; each clip is one request to
the perception deployment (any replica, on any node) and then one to the language deployment, whose
replicas answer the clips of many streams in one batch. The call blocks that thread until the answer
comes, so the number of remote analyzers given to ``create_app`` is the number of clips in flight.
Sessions, windows, bounded queues, fair turns and every message of the protocol stay the server's own.

Per session the face tracker lives here, in the ingress: it travels with each perception request and
comes back with the answer, so face ids continue whichever replica perceives the next clip.

Tasks are checked here, against the task and variant table the replicas reported (``info()``), so a
``session.update`` never waits for a busy replica.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from emox_edge.errors import BadInputError
from emox_edge.scaleout.options import ReplicaLostError

log = logging.getLogger(__name__)


class RemoteAnalyzer:
    """Stands in for an ``Analyzer`` in ``emox_edge.serve``; the models run on Ray Serve replicas.

    ``handles``: the ``DeploymentHandle`` of each role ("perception", "language").

    Raises (from the analysis calls):
        BadInputError / InputTypeError / MediaError: as the local analyzer (the replica's error).
        ReplicaLostError: a replica died or none answered within ``timeout_s``.
    """

    def __init__(self, handles: dict[str, Any], info: dict[str, Any], *, timeout_s: float) -> None:
        self._perception = handles["perception"]
        self._language = handles["language"]
        self._info = info
        self._tasks: dict[str, list[str]] = {k: list(v) for k, v in info.get("tasks", {}).items()}
        self.timeout_s = float(timeout_s)

    # ------------------------------------------------------------------ what the server asks
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @property
    def name(self) -> str:
        return str(self._info.get("name", ""))

    def check_tasks(self, tasks: "Sequence[Any] | str") -> list[Any]:
        """Parse tasks and check their variants against the replicas' table (no request to a replica).

        Raises:
            BadInputError: an unknown task, or a variant the bundle does not list (the message lists them).
        """
        from emox_edge.tasks import parse_tasks

        requests = list(dict.fromkeys(parse_tasks(tasks)))  # the Analyzer's rule: a request once
        for request in requests:
            variants = self._tasks.get(request.task, [])
            if request.variant is not None and request.variant not in variants:
                raise BadInputError(f"task {request}: variant {request.variant!r} is not one of bundle {self.name}'s: "
                                    f"{', '.join(variants) or 'none (this task takes no variant)'}")
        return requests

    def analyse_window(self, window: Any, config: Any, *, source: str, max_frames: int, tracker: Any = None):
        """A session's clip: decoded and perceived on a perception replica, answered on a language
        replica (``emox_edge.serve.jobs.analyse_window``)."""
        from emox_edge.serve.jobs import ClipOutcome

        perceived, state = _call(self._perception, "perceive_window", self.timeout_s,
                                 window, config, source, max_frames, tracker)
        _copy_state(tracker, state)
        if perceived is None:
            return None
        clip, bad, frames, perceive_ms = perceived
        if clip is None:
            return ClipOutcome({}, bad, 0, 0.0)
        result, answer_ms = _call(self._language, "answer", self.timeout_s, clip, list(config.tasks))
        return ClipOutcome(result.to_dict(), bad, frames, perceive_ms + answer_ms)

    def detect_faces_jpeg(self, data: bytes, *, t: float, tracker: Any = None):
        """A session's faces message for one JPEG, detected on a perception replica (``jobs.detect_faces``)."""
        message, state = _call(self._perception, "detect_faces_jpeg", self.timeout_s, data, t, tracker)
        _copy_state(tracker, state)
        return message

    def analyze(self, item: Any, tasks: Any = ("emotion",), *, history: Sequence[str] = (), subtitle: str = "",
                tracker: Any = None):
        """``Analyzer.analyze`` on the replicas: a ``ClipResult`` for a ``Clip``, an image array or a
        file (a list for a file of several clips). A file's bytes are sent (the replica's node may not
        see this one's files); a directory is not supported.

        Raises:
            BadInputError: a directory, a bad task. FileNotFoundError: no such file.
        """
        requests = self.check_tasks(tasks)
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if path.is_dir():
                raise BadInputError(f"{path}: a directory cannot be analysed by remote replicas; send its files")
            data = path.read_bytes()  # raises FileNotFoundError, as the local analyzer does
            items = _call(self._perception, "perceive_file", self.timeout_s, path.name, data, subtitle)
        else:
            items, state = _call(self._perception, "perceive", self.timeout_s, item, tuple(history), subtitle, tracker)
            _copy_state(tracker, state)
        results = self._answer(items, requests)
        return results[0] if len(results) == 1 else results

    def close(self) -> None:
        """Nothing to free here: the replicas belong to the deployments (``RayAnalysis.close``)."""

    # ------------------------------------------------------------------ the requests
    def _answer(self, items: list[Any], requests: list[Any]) -> list[Any]:
        """Each perceived clip answered on a language replica (all sent at once: they may share a batch);
        a ``ClipResult`` (a failed clip) is passed on."""
        from emox_edge.results import ClipResult

        pending = [None if isinstance(p, ClipResult) else _send(self._language, "answer", p, requests) for p in items]
        return [p if sent is None else _result(sent, self.timeout_s)[0] for p, sent in zip(items, pending)]


def _send(handle: Any, method: str, *args: Any) -> tuple[str, Any]:
    """(the deployment's name, the response of a request to it)."""
    return str(getattr(handle, "deployment_name", "analysis")), getattr(handle, method).remote(*args)


def _call(handle: Any, method: str, timeout_s: float, *args: Any) -> Any:
    return _result(_send(handle, method, *args), timeout_s)


def _result(sent: tuple[str, Any], timeout_s: float) -> Any:
    """The answer of a Ray Serve request; the replica's own error, or ``ReplicaLostError``."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    lost = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
            ray_errors.ObjectLostError, ray_errors.OutOfMemoryError, serve_errors.ReplicaUnavailableError,
            serve_errors.DeploymentUnavailableError, serve_errors.BackPressureError)
    role, response = sent
    try:
        return response.result(timeout_s=timeout_s)
    except ray_errors.RayTaskError as exc:  # the replica raised: hand on its own error, not Ray's wrapper
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and not isinstance(cause, ray_errors.RayError):
            raise cause from None
        raise
    except lost as exc:
        raise ReplicaLostError(f"the {role} replica was lost ({type(exc).__name__}); Ray Serve starts a new "
                               "one, later clips go on") from exc
    except TimeoutError as exc:
        response.cancel()
        raise ReplicaLostError(f"no {role} replica answered within {timeout_s:g} s (--request-timeout-s); are the "
                               "replicas running?") from exc


def _copy_state(tracker: Any, state: Any) -> None:
    """Make the session's tracker what the replica made of its copy (no-op without a tracker)."""
    if tracker is None or state is None or state is tracker:
        return
    if dataclasses.is_dataclass(tracker):
        for f in dataclasses.fields(tracker):
            setattr(tracker, f.name, getattr(state, f.name))
    else:
        tracker.__dict__.update(state.__dict__)
