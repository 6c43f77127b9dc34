"""``emox-edge analyze FILE``: answer tasks on one clip (a whole video, audio or image file).

    emox-edge analyze talk.mp4 --bundle bundle/ --task emotion --task intent:mintrec2 --json
"""

from __future__ import annotations

import argparse
import json
import logging

from emox_edge.cli._options import (
    add_bundle_flag,
    add_option_flags,
    add_task_flag,
    open_analyzer,
    options_from_args,
    tasks_from_args,
)

log = logging.getLogger("emox_edge.cli.analyze")
DEFAULT_TASKS = ["emotion"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("analyze", help="answer tasks on one file (one clip)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="video, audio or image file (a directory: one clip per file)")
    add_bundle_flag(parser)
    add_task_flag(parser, default=DEFAULT_TASKS)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--subtitle", default="", metavar="TEXT", help="transcript of the clip")
    parser.add_argument("--history", action="append", default=[], metavar="LINE",
                        help="a dialogue turn for empathize ('user: ...'), repeatable")
    add_option_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emox_edge.capture import Segmentation

    options = options_from_args(args)  # every option is checked before anything is opened
    tasks = tasks_from_args(args)
    path = Path(args.file).expanduser()
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise FileNotFoundError(f"{args.file[:80]}...: not a usable file name ({exc.strerror})") from exc
    if not exists:
        raise FileNotFoundError(f"{path}: no such file (expected a video, audio or image file)")
    with open_analyzer(args, options) as analyzer:
        results = list(analyzer.stream(path, tasks, history=args.history, subtitle=args.subtitle,
                                       segmentation=Segmentation(mode="whole")))
    failed = [r for r in results if r.error]
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload[0] if len(payload) == 1 and not path.is_dir() else payload, indent=2,
                         ensure_ascii=False))
    else:
        for result in results:
            print(result.line())
            for name, task in result.tasks.items():
                print(f"  {name}: {task.text if not task.abstained else '(abstained: ' + task.abstain_reason + ')'}")
    if failed:
        log.error("%d of %d file(s) could not be analysed: %s", len(failed), len(results),
                  "; ".join(f"{r.source}: {r.error}" for r in failed[:5]))
        return 2
    return 0
