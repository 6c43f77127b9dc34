"""``ScaleoutOptions``: where the Ray cluster is and how many perception and language-core replicas it
runs; the CLI's ``emox-edge serve --ray`` flags are derived from it. Importing this module never
imports Ray.

Every value is checked when the options are made, so a bad one fails before Ray starts, with a
``BadInputError`` naming the option and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emox_edge.errors import BadInputError, EmoxEdgeError

INSTALL_HINT = "pip install 'emox-edge[ray]'"
ROLES = ("perception", "language")  # the two deployments (docs/scale-out.md)
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,48}$")
_ADDRESS = re.compile(r"^(auto|ray://[^\s/]+:\d+|[^\s/:]+:\d+)$")


class ReplicaLostError(EmoxEdgeError, ConnectionError):
    """A perception or language replica died, its node went away, or none answered in time: the request
    is lost (the server reports it for that clip or upload and goes on; Ray Serve starts a new replica)."""


class ScaleoutError(EmoxEdgeError, RuntimeError):
    """The replicas could not be started (the message says why: resources, the bundle, Ray)."""


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise BadInputError(f"option {name}={value!r} is not allowed: {allowed}")


def parse_roles(spec: "str | int | float", *, name: str = "replicas", integer: bool = True,
                default: float = 1) -> dict[str, float]:
    """``{"perception": N, "language": M}`` from ``"perception=N,language=M"``; a role left out gets
    ``default``; a bare number is for both roles.

    Raises:
        BadInputError: an unknown role (the old ``analysis=N`` included), a role twice, or a count that
            is not a number (an integer >= 1 when ``integer``, a number >= 0 otherwise).
    """
    kind = "an integer >= 1" if integer else "a number >= 0"
    usage = f"write perception=N,language=M (N and M {kind}), e.g. perception=2,language=1"
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise BadInputError(f"option {name}={spec!r} is not allowed: {usage}")
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) == 1 and "=" not in parts[0]:
        parts = [f"{role}={parts[0]}" for role in ROLES]
    counts: dict[str, float] = {}
    for part in parts:
        role, _, number = (s.strip() for s in part.partition("="))
        role = role.lower()
        if role == "analysis":
            raise BadInputError(f"option {name}={spec!r}: whole-analyzer 'analysis' replicas were replaced by a "
                                f"perception and a language-core deployment: {usage} (docs/scale-out.md)")
        if role not in ROLES:
            raise BadInputError(f"option {name}={spec!r}: unknown role {role!r}; the roles are "
                                f"{', '.join(ROLES)}: {usage}")
        if role in counts:
            raise BadInputError(f"option {name}={spec!r} names {role} twice")
        counts[role] = _count(number, integer=integer, name=name, spec=spec, usage=usage)
    return {role: counts.get(role, default) for role in ROLES}


def _count(text: str, *, integer: bool, name: str, spec: str, usage: str) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = None
    if value is None or value != value or (value < 1 if integer else value < 0):
        raise BadInputError(f"option {name}={spec!r} is not allowed: {usage}")
    return value


def parse_replicas(spec: str) -> dict[str, int]:
    """Replicas per role of ``"perception=N,language=M"`` (a role left out: 1).

    Raises:
        BadInputError: see ``parse_roles``.
    """
    return {role: int(n) for role, n in parse_roles(spec).items()}


@dataclass(frozen=True)
class ScaleoutOptions:
    """How ``emox-edge serve --ray`` runs its analysis on Ray Serve.

    Attributes:
        address: the Ray cluster to join: auto (this machine is a node of a running cluster, started
            with ray start), ray://HOST:10001 (Ray Client, from outside the cluster) or HOST:6379. None
            starts a local Ray instance for this process only, on 127.0.0.1.
        replicas: replicas per deployment, perception=N,language=M (a role left out: 1). Perception
            replicas run faces, voice activity, speech recognition and the bundle's encoders or lite
            perception, one clip at a time; language replicas run the language core on batches of
            clips from many streams. With autoscale, the most replicas of each.
        autoscale: let Ray Serve add and remove replicas of each deployment with the load, between
            min_replicas and its replicas count.
        min_replicas: with autoscale, the fewest replicas of each deployment kept loaded.
        cpus_per_replica: CPUs Ray reserves per replica, for both roles (a number) or per role
            (perception=1,language=2); also the replica's threads when --n-threads is not given.
        gpus_per_replica: GPUs Ray reserves per replica, for both roles or per role
            (perception=0.5,language=0; a fraction shares a GPU); use with --device cuda.
        batch_size: the most clips (from any streams) a language replica answers in one batched
            language-core call.
        batch_wait_ms: how long a language replica waits for more clips to fill a batch once the first
            has come.
        request_timeout_s: the longest wait for one answer (perception or language, queueing
            included); past it the clip gets an error message and the session goes on.
        num_cpus: CPUs of the local Ray instance (no address only; None: all of this machine's).
        object_store_mb: the object store of the local Ray instance in MB (no address only; uploads
            and clips pass through it, so keep it above --max-upload-mb).
        app_name: the prefix of the two Ray Serve applications (NAME-perception, NAME-language);
            several ingresses on one cluster need different names.
    """

    address: str | None = field(default=None, metadata={"metavar": "auto|ray://HOST:PORT"})
    replicas: str = field(default="perception=1,language=1", metadata={"metavar": "perception=N,language=M"})
    autoscale: bool = False
    min_replicas: int = field(default=1, metadata={"metavar": "N"})
    cpus_per_replica: str = field(default="1", metadata={"metavar": "N|perception=N,language=M"})
    gpus_per_replica: str = field(default="0", metadata={"metavar": "N|perception=N,language=M"})
    batch_size: int = field(default=8, metadata={"metavar": "N"})
    batch_wait_ms: float = field(default=10.0, metadata={"metavar": "MS"})
    request_timeout_s: float = field(default=300.0, metadata={"metavar": "S"})
    num_cpus: int | None = field(default=None, metadata={"metavar": "N"})
    object_store_mb: int = field(default=512, metadata={"metavar": "MB"})
    app_name: str = field(default="emox-edge", metadata={"metavar": "NAME"})

    def __post_init__(self) -> None:
        _check(self.address is None or (isinstance(self.address, str) and bool(_ADDRESS.match(self.address.strip()))),
               "address", self.address, "auto, ray://HOST:PORT or HOST:PORT (or none for a local Ray instance)")
        counts = parse_replicas(self.replicas)
        _check(isinstance(self.min_replicas, int) and not isinstance(self.min_replicas, bool)
               and 1 <= self.min_replicas <= min(counts.values()), "min_replicas", self.min_replicas,
               f"an integer from 1 to the smallest replicas count ({min(counts.values())})")
        cpus, gpus = self.cpus, self.gpus
        for role in ROLES:
            _check(cpus[role] > 0 or gpus[role] > 0, "cpus_per_replica", self.cpus_per_replica,
                   f"a number > 0 for {role} (or give it gpus_per_replica)")
        _check(isinstance(self.batch_size, int) and not isinstance(self.batch_size, bool) and 1 <= self.batch_size
               <= 64, "batch_size", self.batch_size, "an integer from 1 to 64")
        for name, value in (("batch_wait_ms", self.batch_wait_ms), ("request_timeout_s", self.request_timeout_s)):
            _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
                   and (value > 0 or name == "batch_wait_ms"), name, value,
                   "a number >= 0" if name == "batch_wait_ms" else "a number of seconds > 0")
        _check(self.num_cpus is None or (isinstance(self.num_cpus, int) and self.num_cpus >= 1), "num_cpus",
               self.num_cpus, "an integer >= 1")
        _check(isinstance(self.object_store_mb, int) and self.object_store_mb >= 80, "object_store_mb",
               self.object_store_mb, "an integer >= 80 (Ray's minimum is 75 MB)")
        _check(isinstance(self.app_name, str) and bool(_APP_NAME.match(self.app_name)), "app_name", self.app_name,
               "letters, digits, '_', '.', '-' (at most 49)")

    @property
    def replica_counts(self) -> dict[str, int]:
        """Replicas per role (without autoscale), or the most replicas (with it)."""
        return parse_replicas(self.replicas)

    @property
    def cpus(self) -> dict[str, float]:
        """CPUs reserved per replica, per role."""
        return parse_roles(self.cpus_per_replica, name="cpus_per_replica", integer=False)

    @property
    def gpus(self) -> dict[str, float]:
        """GPUs reserved per replica, per role."""
        return parse_roles(self.gpus_per_replica, name="gpus_per_replica", integer=False, default=0)

    @property
    def in_flight(self) -> int:
        """Clips the ingress keeps in flight: enough for every perception replica to work while every
        language replica answers a full batch."""
        counts = self.replica_counts
        return counts["perception"] + counts["language"] * self.batch_size

    def app(self, role: str) -> str:
        """The Ray Serve application of ``role``."""
        return f"{self.app_name}-{role}"

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
