"""``emox-edge serve``: the analyzer over HTTP and WebSocket, with a web page (docs/serve.md).

    emox-edge serve                                   # http://127.0.0.1:8765/ on this machine only
    emox-edge serve --bundle bundle/ --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    EMOX_EDGE_TOKEN=secret emox-edge serve --host 0.0.0.0 --max-streams 2
    emox-edge serve --ray --replicas perception=2,language=1   # on Ray Serve replicas (docs/scale-out.md)
    emox-edge serve --ray --address auto --replicas perception=8,language=2 --autoscale   # on a Ray cluster

Listening on anything but loopback needs a token (--token or the EMOX_EDGE_TOKEN environment variable).
"""

from __future__ import annotations

import argparse
import logging
import os

from emox_edge.cli._options import add_bundle_flag, add_option_flags, open_analyzer, open_bundle, options_from_args

log = logging.getLogger("emox_edge.cli.serve")


def register(subparsers) -> None:
    from emox_edge.cli.flags import add_flags
    from emox_edge.serve.options import ServeOptions

    parser = subparsers.add_parser("serve", help="serve the analyzer over HTTP and WebSocket, with a web page",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bundle_flag(parser)
    add_flags(parser, ServeOptions, title="server options")
    add_option_flags(parser)
    from emox_edge.scaleout.options import ScaleoutOptions  # imports no Ray

    parser.add_argument("--ray", action="store_true",
                        help="run the analysis on Ray Serve replicas, locally or on a cluster (needs the ray extra)")
    add_flags(parser, ScaleoutOptions, title="scale-out options (with --ray; docs/scale-out.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emox_edge.cli.flags import from_args
    from emox_edge.serve.options import TOKEN_ENV, ServeOptions
    from emox_edge.serve.server import require_server_packages

    token = args.token or os.environ.get(TOKEN_ENV) or None
    serve_options = from_args(ServeOptions, args, token=token)  # a public address without a token stops here
    require_server_packages()
    options = options_from_args(args)
    from emox_edge.scaleout.options import ScaleoutOptions

    scaleout = from_args(ScaleoutOptions, args)
    if args.ray:
        from emox_edge.scaleout.cluster import serve_on_ray

        return serve_on_ray(args.bundle, options, serve_options, scaleout)
    if scaleout != ScaleoutOptions():
        from emox_edge.errors import BadInputError

        raise BadInputError("--address, --replicas, --autoscale and the other scale-out options need --ray")
    from emox_edge.serve.app import create_app
    from emox_edge.serve.server import serve_forever

    bundle = open_bundle(args)
    workers = serve_options.workers
    if workers is None:
        from dataclasses import replace

        from emox_edge.serve.options import auto_workers

        workers, n_threads = auto_workers(bundle.kind, options.n_threads)
        options = replace(options, n_threads=n_threads)
        log.info("%d worker(s) with %s thread(s) each (--workers / --n-threads to choose)", workers,
                 options.n_threads or "automatic")
    analyzers = []
    try:
        for _ in range(workers):
            analyzers.append(open_analyzer(args, options, bundle))
        serve_forever(create_app(analyzers, serve_options), serve_options)
    finally:
        for analyzer in analyzers:
            analyzer.close()
    return 0
