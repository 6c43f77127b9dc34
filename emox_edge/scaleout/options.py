"""``ScaleoutOptions``: where the Ray cluster is and how many analysis replicas it runs; the CLI's
``emox-edge serve --ray`` flags are derived from it. Importing this module never imports Ray.

Every value is checked when the options are made, so a bad one fails before Ray starts, with a
``BadInputError`` naming the option and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emox_edge.errors import BadInputError, EmoxEdgeError

INSTALL_HINT = "pip install 'emox-edge[ray]'"
REPLICA_ROLES = ("analysis",)  # v1: whole-analyzer replicas (docs/scale-out.md says why)
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ADDRESS = re.compile(r"^(auto|ray://[^\s/]+:\d+|[^\s/:]+:\d+)$")


class ReplicaLostError(EmoxEdgeError, ConnectionError):
    """An analysis replica died, its node went away, or none answered in time: the request is lost
    (the server reports it for that clip or upload and goes on; Ray Serve starts a new replica)."""


class ScaleoutError(EmoxEdgeError, RuntimeError):
    """The analysis replicas could not be started (the message says why: resources, the bundle, Ray)."""


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise BadInputError(f"option {name}={value!r} is not allowed: {allowed}")


def parse_replicas(spec: str) -> int:
    """The replica count of ``"analysis=N"`` (or a bare ``"N"``).

    Raises:
        BadInputError: another role (perception, language), a count below 1, or not that form.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise BadInputError(f"option replicas={spec!r} is not allowed: write analysis=N, e.g. analysis=2")
    counts: dict[str, int] = {}
    for part in spec.split(","):
        role, sep, number = part.strip().rpartition("=")
        role = role.strip().lower() if sep else "analysis"
        if role in ("perception", "language"):
            raise BadInputError(f"option replicas={spec!r}: {role} replicas are not available yet; this version "
                                "deploys whole-analyzer replicas (perception and language core together): write "
                                "analysis=N (docs/scale-out.md, 'Not supported')")
        if role not in REPLICA_ROLES or not number.strip().isdigit() or int(number) < 1:
            raise BadInputError(f"option replicas={spec!r} is not allowed: write analysis=N with N >= 1, e.g. "
                                "analysis=2")
        if role in counts:
            raise BadInputError(f"option replicas={spec!r} names {role} twice")
        counts[role] = int(number)
    return counts["analysis"]


@dataclass(frozen=True)
class ScaleoutOptions:
    """How ``emox-edge serve --ray`` runs its analysis on Ray Serve.

    Attributes:
        address: the Ray cluster to join: auto (this machine is a node of a running cluster, started
            with ray start), ray://HOST:10001 (Ray Client, from outside the cluster) or HOST:6379. None
            starts a local Ray instance for this process only, on 127.0.0.1.
        replicas: analysis replicas, analysis=N. Each is a whole analyzer (perception and language
            core) with its own copy of the models; with autoscale, N is the most replicas.
        autoscale: let Ray Serve add and remove replicas with the load, between min_replicas and the
            replicas count (one clip at a time per replica is the target).
        min_replicas: with autoscale, the fewest replicas kept loaded.
        cpus_per_replica: CPUs Ray reserves for each replica; also its analyzer's threads when
            --n-threads is not given.
        gpus_per_replica: GPUs Ray reserves for each replica (a fraction shares a GPU); use with --device
            cuda.
        request_timeout_s: the longest wait for a replica's answer to one clip or upload (queueing
            included); past it the clip gets an error message and the session goes on.
        num_cpus: CPUs of the local Ray instance (no address only; None: all of this machine's).
        object_store_mb: the object store of the local Ray instance in MB (no address only; uploads
            and clips pass through it, so keep it above --max-upload-mb).
        app_name: the Ray Serve application name; several ingresses on one cluster need different names.
    """

    address: str | None = field(default=None, metadata={"metavar": "auto|ray://HOST:PORT"})
    replicas: str = field(default="analysis=1", metadata={"metavar": "analysis=N"})
    autoscale: bool = False
    min_replicas: int = field(default=1, metadata={"metavar": "N"})
    cpus_per_replica: float = field(default=1.0, metadata={"metavar": "N"})
    gpus_per_replica: float = field(default=0.0, metadata={"metavar": "N"})
    request_timeout_s: float = field(default=300.0, metadata={"metavar": "S"})
    num_cpus: int | None = field(default=None, metadata={"metavar": "N"})
    object_store_mb: int = field(default=512, metadata={"metavar": "MB"})
    app_name: str = field(default="emox-edge", metadata={"metavar": "NAME"})

    def __post_init__(self) -> None:
        _check(self.address is None or (isinstance(self.address, str) and bool(_ADDRESS.match(self.address.strip()))),
               "address", self.address, "auto, ray://HOST:PORT or HOST:PORT (or none for a local Ray instance)")
        count = parse_replicas(self.replicas)
        _check(isinstance(self.min_replicas, int) and not isinstance(self.min_replicas, bool)
               and 1 <= self.min_replicas <= count, "min_replicas", self.min_replicas,
               f"an integer from 1 to the replicas count ({count})")
        for name, low in (("cpus_per_replica", 0.0), ("gpus_per_replica", 0.0)):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low, name, value,
                   f"a number >= {low:g}")
        _check(self.cpus_per_replica > 0 or self.gpus_per_replica > 0, "cpus_per_replica", self.cpus_per_replica,
               "a number > 0 (or give gpus_per_replica)")
        _check(isinstance(self.request_timeout_s, (int, float)) and self.request_timeout_s > 0, "request_timeout_s",
               self.request_timeout_s, "a number of seconds > 0")
        _check(self.num_cpus is None or (isinstance(self.num_cpus, int) and self.num_cpus >= 1), "num_cpus",
               self.num_cpus, "an integer >= 1")
        _check(isinstance(self.object_store_mb, int) and self.object_store_mb >= 80, "object_store_mb",
               self.object_store_mb, "an integer >= 80 (Ray's minimum is 75 MB)")
        _check(isinstance(self.app_name, str) and bool(_APP_NAME.match(self.app_name)), "app_name", self.app_name,
               "letters, digits, '_', '.', '-' (at most 64)")

    @property
    def replica_count(self) -> int:
        """The replicas (without autoscale) or the most replicas (with it)."""
        return parse_replicas(self.replicas)

    @property
    def local(self) -> bool:
        """Whether this process starts its own Ray instance (no address)."""
        return self.address is None


def require_ray() -> None:
    """Check that Ray Serve can be imported.

    Raises:
        MissingDependencyError: it cannot; the message says how to install it.
    """
    from emox_edge.errors import MissingDependencyError

    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"emox-edge serve --ray needs Ray Serve ({exc}): {INSTALL_HINT}") from exc
