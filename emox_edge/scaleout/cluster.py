"""Start (or join) Ray, deploy the ``Analysis`` replicas on Ray Serve, and hand the server remote
analyzers that send its jobs to them.

    from emox_edge.scaleout import RayAnalysis, ScaleoutOptions
    from emox_edge.serve import ServeOptions, Server, create_app

    with RayAnalysis.start("bundle/", AnalyzerOptions(), ScaleoutOptions(replicas="analysis=2")) as analysis:
        options = ServeOptions(port=0)
        with Server(create_app(analysis.analyzers(), options), options) as server:
            print(server.url)        # the same HTTP and WebSocket API as ``emox-edge serve``

The ingress (the FastAPI app, its sessions and windows) runs in this process; only the analysis runs
on the replicas, wherever Ray places them. Needs ``pip install 'emox-edge[ray]'``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from emox_edge.errors import BadInputError
from emox_edge.options import AnalyzerOptions
from emox_edge.scaleout.options import ScaleoutError, ScaleoutOptions, require_ray

log = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0  # replicas load the models; a big bundle on a slow disk takes minutes
LOCAL_HOST = "127.0.0.1"


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
    """The ``Analysis`` deployment of one bundle on Ray Serve. ``start`` it; ``close`` removes it."""

    def __init__(self, handle: Any, info: dict[str, Any], options: ScaleoutOptions, *, started_ray: bool) -> None:
        self.handle = handle
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
            handle = _deploy(path, digest, analyzer_options, options)
            info = handle.info.remote().result(timeout_s=options.request_timeout_s)
        except BaseException:
            if started:
                _shutdown_ray()
            raise
        scaleout = {"backend": "ray", "app": options.app_name, "address": options.address or "local",
                    "replicas": options.replica_count, "autoscale": options.autoscale,
                    "cpus_per_replica": options.cpus_per_replica, "gpus_per_replica": options.gpus_per_replica}
        return cls(handle, {**info, "scaleout": scaleout}, options, started_ray=started)

    def analyzers(self) -> list[Any]:
        """Remote analyzers for ``create_app``: one per clip that may be in flight at once (the most
        replicas; each replica takes one request at a time, the rest wait in Ray Serve's queue)."""
        from emox_edge.scaleout.remote import RemoteAnalyzer

        return [RemoteAnalyzer(self.handle, self._info, timeout_s=self.options.request_timeout_s)
                for _ in range(self.options.replica_count)]

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def replica_names(self) -> list[str]:
        """Ray actor names (namespace "serve") of the running replicas."""
        import ray

        prefix = f"SERVE_REPLICA::{self.options.app_name}#analysis#"
        return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                      if a["name"].startswith(prefix))

    def close(self) -> None:
        """Delete the deployment (its replicas free their models); shut Ray down if ``start`` started it."""
        if self._closed:
            return
        self._closed = True
        from ray import serve

        try:
            serve.delete(self.options.app_name)
        except Exception as exc:  # Ray already gone: nothing left to delete
            log.warning("could not delete the Ray Serve application %s: %s", self.options.app_name, exc)
        if self._started_ray:
            _shutdown_ray()

    def __enter__(self) -> "RayAnalysis":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_on_ray(bundle: str | None, analyzer_options: AnalyzerOptions, serve_options: Any,
                 options: ScaleoutOptions) -> int:
    """``emox-edge serve --ray``: deploy the replicas, then serve the usual app until Ctrl-C or SIGTERM."""
    if serve_options.workers != 1:
        raise BadInputError(f"option workers={serve_options.workers} is for local analyzers; with --ray give "
                            "--replicas analysis=N")
    from emox_edge.serve.app import create_app
    from emox_edge.serve.server import serve_forever

    with RayAnalysis.start(bundle, analyzer_options, options) as analysis:
        log.info("Ray Serve application %r: %s analysis replica(s)%s", options.app_name,
                 f"{options.min_replicas}-{options.replica_count}" if options.autoscale else options.replica_count,
                 " (autoscaling)" if options.autoscale else "")
        serve_forever(create_app(analysis.analyzers(), serve_options), serve_options)
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


def _deploy(path: str, digest: str | None, analyzer_options: AnalyzerOptions, options: ScaleoutOptions):
    import ray
    from ray import serve

    from emox_edge.scaleout.deployment import Analysis

    if options.app_name in _applications():
        raise BadInputError(f"a Ray Serve application {options.app_name!r} is running on this cluster already (another "
                            "emox-edge serve --ray?); give --app-name, or stop it with: serve delete "
                            f"{options.app_name}")
    need = options.cpus_per_replica * (options.min_replicas if options.autoscale else options.replica_count)
    have = ray.cluster_resources().get("CPU", 0.0)
    if need > have:
        message = (f"{need:g} CPUs are needed for the replicas ({options.cpus_per_replica:g} each) and the Ray "
                   f"cluster has {have:g}")
        if options.local:
            raise ScaleoutError(f"{message}; give fewer --replicas, a smaller --cpus-per-replica or a larger --num-cpus")
        log.warning("%s: the replicas wait until nodes join", message)
    actor = {"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica}
    if options.autoscale:
        scaling = {"autoscaling_config": {"min_replicas": options.min_replicas, "max_replicas": options.replica_count,
                                          "target_ongoing_requests": 1, "upscale_delay_s": 5,
                                          "downscale_delay_s": 120}}
    else:
        scaling = {"num_replicas": options.replica_count}
    app = Analysis.options(ray_actor_options=actor, **scaling).bind(path, analyzer_options, digest)
    serve.start(proxy_location="Disabled")  # the ingress is this process's server, not Ray's HTTP proxy
    # deploy without waiting (serve.run would wait for ever on a cluster without room), then watch it
    serve.run_many([serve.RunTarget(target=app, name=options.app_name, route_prefix=None)],
                   wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    return _wait_running(options.app_name)


def _applications() -> dict[str, Any]:
    from ray import serve

    try:
        return dict(serve.status().applications)
    except Exception:  # no Serve on this cluster yet
        return {}


def _wait_running(name: str):
    """The app's handle once it is RUNNING; a ScaleoutError with Ray Serve's reason when it fails."""
    from ray import serve

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        app = _applications().get(name)
        status = str(getattr(app, "status", ""))
        if status.endswith("RUNNING"):
            return serve.get_app_handle(name)
        if status.endswith("DEPLOY_FAILED") or status.endswith("UNHEALTHY"):
            _delete_quietly(name)
            raise ScaleoutError(f"the analysis replicas did not start: {_reason(app)}")
        time.sleep(0.5)
    _delete_quietly(name)
    raise ScaleoutError(f"the analysis replicas did not start within {START_TIMEOUT_S:g} s (not enough CPUs or GPUs "
                        "on the cluster's nodes? see `ray status`)")


def _reason(app: Any) -> str:
    """The last line of the first failure message Ray Serve gives for ``app`` (not its traceback)."""
    messages = [getattr(d, "message", "") for d in getattr(app, "deployments", {}).values()]
    text = next((m for m in messages if m), "") or getattr(app, "message", "") or "no reason given"
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Error(" in line]
    return (errors or lines or ["no reason given"])[-1][:500]


def _delete_quietly(name: str) -> None:
    from ray import serve

    try:
        serve.delete(name)
    except Exception as exc:
        log.warning("could not delete the Ray Serve application %s: %s", name, exc)


def _shutdown_ray() -> None:
    """Stop the local Ray instance this process started (its Serve controller and replicas with it)."""
    import ray

    ray.shutdown()
