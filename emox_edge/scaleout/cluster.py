"""Start (or join) Ray, deploy the ``Perception`` and ``Language`` replicas on Ray Serve, and hand the
server remote analyzers that send its clips to them.

    from emox_edge.scaleout import RayAnalysis, ScaleoutOptions
    from emox_edge.serve import ServeOptions, Server, create_app

    scaleout = ScaleoutOptions(replicas="perception=2,language=1")
    with RayAnalysis.start("bundle/", AnalyzerOptions(), scaleout) as analysis:
        options = ServeOptions(port=0)
        with Server(create_app(analysis.analyzers(), options), options) as server:
            print(server.url)        # the same HTTP and WebSocket API as ``emox-edge serve``

The ingress (the FastAPI app, its sessions and windows) runs in this process and composes the two
deployments (``remote.RemoteAnalyzer``); they run wherever Ray places them. Needs
``pip install 'emox-edge[ray]'``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from emox_edge.errors import BadInputError
from emox_edge.options import AnalyzerOptions
from emox_edge.scaleout.options import ROLES, ScaleoutError, ScaleoutOptions, require_ray

log = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0  # replicas load the models; a big bundle on a slow disk takes minutes
LOCAL_HOST = "127.0.0.1"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_ray(options: ScaleoutOptions) -> bool:
    """Connect to Ray as ``options`` say; returns True when this call started a local instance (the
    caller shuts it down). A process already connected to Ray is left as it is."""
    require_ray()
    import ray

    if ray.is_initialized():
        return False
    if options.local:  # this machine only: loopback, no dashboard, a bounded object store
        ray.init(num_cpus=options.num_cpus, object_store_memory=options.object_store_mb * 1024 * 1024,
                 include_dashboard=False, _node_ip_address=LOCAL_HOST, log_to_driver=False,
                 configure_logging=False)
        return True
    ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    return False


class RayAnalysis:
    """The perception and language deployments of one bundle on Ray Serve. ``start`` them; ``close``
    removes them."""

    def __init__(self, handles: dict[str, Any], info: dict[str, Any], options: ScaleoutOptions, *,
                 started_ray: bool) -> None:
        self.handles = handles
        self.options = options
        self._info = info
        self._started_ray = started_ray
        self._closed = False

    @classmethod
    def start(cls, bundle: "str | os.PathLike | None", analyzer_options: AnalyzerOptions | None = None,
              options: ScaleoutOptions | None = None) -> "RayAnalysis":
        """Deploy the replicas and wait until they have loaded the bundle.

        ``bundle`` must be at the same path on every node (None: the default lite bundle, at this
        machine's path). This process checks it when it can see it; each replica checks that its
        ``bundle.json`` is the same as the one seen here.

        Raises:
            MissingDependencyError: Ray Serve is not installed (the message says how to install it).
            FileNotFoundError / BundleError: the bundle (seen from here) is missing or corrupt.
            ScaleoutError: the replicas did not start (not enough CPUs or GPUs, a node's bundle, Ray).
            BadInputError: an application of that name is running already.
        """
        options = options or ScaleoutOptions()
        analyzer_options = analyzer_options or AnalyzerOptions()
        require_ray()
        path, digest = _resolve_bundle(bundle)
        started = start_ray(options)
        try:
            handles = _deploy(path, digest, analyzer_options, options)
            info = handles["perception"].info.remote().result(timeout_s=options.request_timeout_s)
        except BaseException:
            if started:
                _shutdown_ray()
            raise
        scaleout = {"backend": "ray", "app": options.app_name, "address": options.address or "local",
                    "replicas": options.replica_counts, "autoscale": options.autoscale,
                    "cpus_per_replica": options.cpus, "gpus_per_replica": options.gpus,
                    "batch_size": options.batch_size}
        return cls(handles, {**info, "scaleout": scaleout}, options, started_ray=started)

    def analyzers(self) -> list[Any]:
        """Remote analyzers for ``create_app``: one per clip that may be in flight at once
        (``ScaleoutOptions.in_flight``; requests beyond the replicas' room wait in Ray Serve's queue)."""
        from emox_edge.scaleout.remote import RemoteAnalyzer

        return [RemoteAnalyzer(self.handles, self._info, timeout_s=self.options.request_timeout_s)
                for _ in range(self.options.in_flight)]

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def batch_sizes(self) -> list[int]:
        """The sizes of the recent batches of a language replica (the one Ray Serve routes this to)."""
        info = self.handles["language"].info.remote().result(timeout_s=self.options.request_timeout_s)
        return list(info["batch_sizes"])

    def replica_names(self, role: str) -> list[str]:
        """Ray actor names (namespace "serve") of the running replicas of ``role``."""
        import ray

        prefix = f"SERVE_REPLICA::{self.options.app(role)}#{role}#"
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["name"].startswith(prefix))

    def close(self) -> None:
        """Delete the deployments (their replicas free their models); shut Ray down if ``start`` started it."""
        if self._closed:
            return
        self._closed = True
        _delete_quietly(*(self.options.app(role) for role in ROLES))
        if self._started_ray:
            _shutdown_ray()

    def __enter__(self) -> "RayAnalysis":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_on_ray(bundle: str | None, analyzer_options: AnalyzerOptions, serve_options: Any,
                 options: ScaleoutOptions) -> int:
    """``emox-edge serve --ray``: deploy the replicas, then serve the usual app until Ctrl-C or SIGTERM.

    Both stop as they stop the single-process server (running clips finish, then Ctrl-C raises
    ``KeyboardInterrupt``: exit 130), and then delete the applications and stop the local Ray
    instance; SIGTERM raises the CLI's ``Terminated`` (exit 143) where Ray's own handler would exit 15.
    """
    if serve_options.workers not in (None, 1):
        raise BadInputError(f"option workers={serve_options.workers} is for local analyzers; with --ray give "
                            "--replicas perception=N,language=M")
    from emox_edge.cli.run import Terminated
    from emox_edge.serve.app import create_app
    from emox_edge.serve.server import serve_forever

    def on_sigterm(signum, frame):
        raise Terminated

    require_ray()
    _resolve_bundle(bundle)  # a missing or corrupt bundle fails before Ray starts
    started = start_ray(options)  # ray.init sets a SIGTERM handler of its own (sys.exit(15)): replace it
    previous = signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        with RayAnalysis.start(bundle, analyzer_options, options) as analysis:
            counts = options.replica_counts
            log.info("Ray Serve applications %s-perception and %s-language: %s perception and %s language "
                     "replica(s)%s", options.app_name, options.app_name,
                     *(f"{options.min_replicas}-{counts[r]}" if options.autoscale else counts[r] for r in ROLES),
                     " (autoscaling)" if options.autoscale else "")
            serve_forever(create_app(analysis.analyzers(), serve_options), serve_options)
    finally:
        if started:
            _shutdown_ray()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _resolve_bundle(bundle: "str | os.PathLike | None") -> tuple[str, str | None]:
    """The bundle's absolute path and its manifest digest (None when this machine cannot see it)."""
    from emox_edge.scaleout.deployment import manifest_digest

    if bundle is None:
        from emox_edge.default_bundle import default_bundle_path

        log.info("no --bundle given: the default lite bundle, at the same path on every node")
        bundle = default_bundle_path()
    path = Path(bundle).expanduser().absolute()
    if path.exists():
        from emox_edge.bundle import Bundle

        Bundle.open(path)  # a missing or corrupt bundle fails here, with the file's name
    else:
        log.warning("%s is not on this machine; the replicas' nodes must have it", path)
    return str(path), manifest_digest(path)


def _deploy(path: str, digest: str | None, analyzer_options: AnalyzerOptions, options: ScaleoutOptions
            ) -> dict[str, Any]:
    import ray
    from ray import serve

    from emox_edge.scaleout.deployment import Language, Perception

    running = [options.app(role) for role in ROLES if options.app(role) in _applications()]
    if running:
        raise BadInputError(f"the Ray Serve application {running[0]!r} is running on this cluster already (another "
                            "emox-edge serve --ray?); give --app-name, or stop it with: serve delete "
                            f"{' '.join(running)}")
    counts, cpus, gpus = options.replica_counts, options.cpus, options.gpus
    kept = {role: options.min_replicas if options.autoscale else counts[role] for role in ROLES}
    need = sum(cpus[role] * kept[role] for role in ROLES)
    have = ray.cluster_resources().get("CPU", 0.0)
    if need > have:
        each = ", ".join(f"{kept[r]} {r} x {cpus[r]:g}" for r in ROLES)
        message = f"{need:g} CPUs are needed for the replicas ({each}) and the Ray cluster has {have:g}"
        if options.local:
            raise ScaleoutError(f"{message}; give fewer --replicas, a smaller --cpus-per-replica or a larger "
                                "--num-cpus")
        log.warning("%s: the replicas wait until nodes join", message)
    apps = []
    for role, deployment, args in (("perception", Perception, ()),
                                   ("language", Language, (options.batch_size, options.batch_wait_ms))):
        settings: dict[str, Any] = {"ray_actor_options": {"num_cpus": cpus[role], "num_gpus": gpus[role],
                                                          "runtime_env": {"env_vars": thread_env()}}}
        if role == "language":  # room for a full batch being answered and the next one filling
            settings["max_ongoing_requests"] = 2 * options.batch_size
        if options.autoscale:
            target = options.batch_size if role == "language" else 1
            settings["autoscaling_config"] = {"min_replicas": options.min_replicas, "max_replicas": counts[role],
                                              "target_ongoing_requests": target, "upscale_delay_s": 5,
                                              "downscale_delay_s": 120}
        else:
            settings["num_replicas"] = counts[role]
        app = deployment.options(**settings).bind(path, analyzer_options, digest, *args)
        apps.append(serve.RunTarget(target=app, name=options.app(role), route_prefix=None))
    serve.start(proxy_location="Disabled")  # the ingress is this process's server, not Ray's HTTP proxy
    # deploy without waiting (serve.run would wait for ever on a cluster without room), then watch them
    serve.run_many(apps, wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    return {role: _wait_running(options, role) for role in ROLES}


def thread_env() -> dict[str, str]:
    """The BLAS and OpenMP thread settings of this process, for the replicas' worker processes.

    Ray sets ``OMP_NUM_THREADS`` to a worker's CPUs when it is unset, and so the threads of the
    OpenBLAS behind numpy (1 for a replica of 1 CPU). Their rounding changes the speech recogniser's
    features (``emox_edge.speech``) and, at times, the words heard: a replica would not answer as
    ``emox-edge serve`` does on the same machine. When neither is set here, OpenBLAS is given more
    threads than any node has, which it caps at the node's cores, as when unset.
    """
    env = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    if "OMP_NUM_THREADS" not in env and "OPENBLAS_NUM_THREADS" not in env:
        env["OPENBLAS_NUM_THREADS"] = "4096"
    return env


def _applications() -> dict[str, Any]:
    from ray import serve

    try:
        return dict(serve.status().applications)
    except Exception:  # no Serve on this cluster yet
        return {}


def _wait_running(options: ScaleoutOptions, role: str):
    """The app's handle once it is RUNNING; a ScaleoutError with Ray Serve's reason when it fails (both
    applications are deleted then)."""
    from ray import serve

    name = options.app(role)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        app = _applications().get(name)
        status = str(getattr(app, "status", ""))
        if status.endswith("RUNNING"):
            return serve.get_app_handle(name)
        if status.endswith("DEPLOY_FAILED") or status.endswith("UNHEALTHY"):
            reason = _reason(app)
            break
        time.sleep(0.5)
    else:
        reason = None
    _delete_quietly(*(options.app(other) for other in ROLES))
    if reason is not None:
        raise ScaleoutError(f"the {role} replicas did not start: {reason}")
    raise ScaleoutError(f"the {role} replicas did not start within {START_TIMEOUT_S:g} s (not enough CPUs or GPUs "
                        "on the cluster's nodes? see `ray status`)")


def _reason(app: Any) -> str:
    """The last line of the first failure message Ray Serve gives for ``app`` (not its traceback)."""
    messages = [getattr(d, "message", "") for d in getattr(app, "deployments", {}).values()]
    text = next((m for m in messages if m), "") or getattr(app, "message", "") or "no reason given"
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Error(" in line]
    return (errors or lines or ["no reason given"])[-1][:500]


def _delete_quietly(*names: str) -> None:
    """Delete the applications (all at once; their replicas stop in parallel), logging what fails."""
    from ray import serve

    for name in names:
        try:
            serve.delete(name, _blocking=False)
        except Exception as exc:  # Ray already gone: nothing left to delete
            log.warning("could not delete the Ray Serve application %s: %s", name, exc)
    deadline = time.monotonic() + 60.0
    while any(name in _applications() for name in names) and time.monotonic() < deadline:
        time.sleep(0.2)


def _shutdown_ray() -> None:
    """Stop the local Ray instance this process started (its Serve controller and replicas with it)."""
    import ray

    ray.shutdown()
