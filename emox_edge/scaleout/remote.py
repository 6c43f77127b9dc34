"""``RemoteAnalyzer``: what ``emox_edge.serve`` takes for an analyzer, with the work done by the
``Analysis`` replicas of Ray Serve.

The server's worker threads call it as they would call a local analyzer; each call is one request to
the deployment (any replica, on any node) and blocks that thread until the answer comes, so the
number of remote analyzers given to ``create_app`` is the number of clips in flight. Sessions,
windows, bounded queues, fair turns and every message of the protocol stay the server's own.

Per session the face tracker lives here, in the ingress: it travels with each request and comes back
with the answer, so face ids continue whichever replica analyses the next clip.

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


class _Result:
    """A result the replica already made into its dict (``ClipResult.to_dict()``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


class RemoteAnalyzer:
    """Stands in for an ``Analyzer`` in ``emox_edge.serve``; the models run on Ray Serve replicas.

    Raises (from the analysis calls):
        BadInputError / InputTypeError / MediaError: as the local analyzer (the replica's error).
        ReplicaLostError: the replica died or none answered within ``timeout_s``.
    """

    def __init__(self, handle: Any, info: dict[str, Any], *, timeout_s: float) -> None:
        self._handle = handle
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
        """A session's clip, decoded and analysed on a replica (``emox_edge.serve.jobs.analyse_window``)."""
        outcome, state = self._call("analyse_window", window, config, source, max_frames, tracker)
        _copy_state(tracker, state)
        return outcome

    def detect_faces_jpeg(self, data: bytes, *, t: float, tracker: Any = None):
        """A session's faces message for one JPEG, detected on a replica (``jobs.detect_faces``)."""
        message, state = self._call("detect_faces_jpeg", data, t, tracker)
        _copy_state(tracker, state)
        return message

    def analyze(self, item: Any, tasks: Any = ("emotion",), *, history: Sequence[str] = (), subtitle: str = "",
                tracker: Any = None):
        """``Analyzer.analyze`` on a replica. A file's bytes are sent (the replica's node may not see this
        one's files); a directory is not supported. Returns objects with ``to_dict()`` for files, and
        ``ClipResult``s for clips and arrays.

        Raises:
            BadInputError: a directory. FileNotFoundError: no such file.
        """
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if path.is_dir():
                raise BadInputError(f"{path}: a directory cannot be analysed by remote replicas; send its files")
            data = path.read_bytes()  # raises FileNotFoundError, as the local analyzer does
            result = self._call("analyze_file", path.name, data, tasks, subtitle)
            return [_Result(r) for r in result] if isinstance(result, list) else _Result(result)
        result, state = self._call("analyze", item, tasks, tuple(history), subtitle, tracker)
        _copy_state(tracker, state)
        return result

    def close(self) -> None:
        """Nothing to free here: the replicas belong to the deployment (``RayAnalysis.close``)."""

    # ------------------------------------------------------------------ the request
    def _call(self, method: str, *args: Any) -> Any:
        from ray import exceptions as ray_errors
        from ray.serve import exceptions as serve_errors

        lost = (ray_errors.RayActorError, ray_errors.WorkerCrashedError, ray_errors.NodeDiedError,
                ray_errors.ObjectLostError, ray_errors.OutOfMemoryError, serve_errors.ReplicaUnavailableError,
                serve_errors.DeploymentUnavailableError, serve_errors.BackPressureError)
        response = getattr(self._handle, method).remote(*args)
        try:
            return response.result(timeout_s=self.timeout_s)
        except ray_errors.RayTaskError as exc:  # the replica raised: hand on its own error, not Ray's wrapper
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception) and not isinstance(cause, ray_errors.RayError):
                raise cause from None
            raise
        except lost as exc:
            raise ReplicaLostError(f"the analysis replica was lost ({type(exc).__name__}); Ray Serve starts a "
                                   "new one, later clips go on") from exc
        except TimeoutError as exc:
            response.cancel()
            raise ReplicaLostError(f"no analysis replica answered within {self.timeout_s:g} s "
                                   "(--request-timeout-s); are the replicas running?") from exc


def _copy_state(tracker: Any, state: Any) -> None:
    """Make the session's tracker what the replica made of its copy (no-op without a tracker)."""
    if tracker is None or state is None or state is tracker:
        return
    if dataclasses.is_dataclass(tracker):
        for f in dataclasses.fields(tracker):
            setattr(tracker, f.name, getattr(state, f.name))
    else:
        tracker.__dict__.update(state.__dict__)
