"""``emox-edge run``: analyse a camera, microphone, file or stream live, one line per clip.

    emox-edge run --camera 0 --mic --task emotion --show
    emox-edge run --source talk.mp4 --bundle bundle/ --task sentiment,intent --jsonl out.jsonl --save out.mp4

Without --camera/--source: camera 0 if it opens, else the demo clip (logged). On the demo clip the
default tasks are emotion, sentiment and empathize, and the annotated video is saved to
./emox-demo-annotated.mp4 unless --save names another file.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import platform
import signal
import threading

from emox_edge.cli._options import (
    add_bundle_flag,
    add_option_flags,
    add_task_flag,
    open_analyzer,
    options_from_args,
    tasks_from_args,
)

log = logging.getLogger("emox_edge.cli.run")
DEFAULT_TASKS = ["emotion"]
DEMO_TASKS = ["emotion", "sentiment", "empathize"]
DEMO_SAVE = "emox-demo-annotated.mp4"


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="analyse a camera, microphone, file or stream live",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--camera", metavar="N", help="camera index (e.g. 0)")
    where.add_argument("--source", metavar="PATH_OR_URL", help="video/audio/image file, directory or stream URL")
    parser.add_argument("--mic", nargs="?", const=True, default=None, metavar="DEV",
                        help="also capture a microphone (default input device, or an index / name)")
    add_bundle_flag(parser)
    add_task_flag(parser, default=DEFAULT_TASKS)
    parser.add_argument("--show", action="store_true", help="preview window with the overlay (when a display exists)")
    parser.add_argument("--save", metavar="FILE", help="write the annotated video (.mp4/.avi), renamed when done")
    parser.add_argument("--jsonl", metavar="FILE", help="write one JSON result per line (flushed per clip, renamed when done)")
    parser.add_argument("--max-clips", type=int, metavar="N", help="stop after N clips")
    parser.add_argument("--window", type=float, metavar="S", default=4.0, help="clip length in seconds (default 4)")
    parser.add_argument("--vad", action="store_true", help="cut clips at utterances (voice activity) instead of fixed windows")
    parser.add_argument("--subtitle", default="", metavar="TEXT", help="transcript given to the model for every clip")
    parser.add_argument("--history", action="append", default=[], metavar="LINE",
                        help="a dialogue turn for empathize ('user: ...'), repeatable")
    add_option_flags(parser)
    parser.set_defaults(func=run)


def _source(args: argparse.Namespace):
    if args.camera is not None:
        return args.camera
    if args.source is not None:
        return args.source
    if args.mic is not None:
        return None
    return _default_source()


def _camera0_opens() -> bool:
    if platform.system() == "Linux" and not glob.glob("/dev/video*"):
        return False  # no video device at all: skip OpenCV's noisy probe
    import cv2

    cap = cv2.VideoCapture(0)
    try:
        return bool(cap.isOpened())
    finally:
        cap.release()


def _default_source():
    if _camera0_opens():
        log.info("no --camera/--source given: using camera 0")
        return 0
    try:
        from emox_edge.demo import ensure_demo_clip
    except ImportError as exc:
        raise ConnectionError("no --camera/--source given, camera 0 does not open and no demo clip is installed") from exc
    path = ensure_demo_clip()
    log.info("no --camera/--source given and camera 0 does not open: using the demo clip %s", path)
    return str(path)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop now; results analysed so far are committed like on Ctrl-C (exit 143)."""


@contextlib.contextmanager
def _stop_signals():
    """First Ctrl-C: finish the clip in hand, then stop (raised from the loop, where it cannot be lost
    inside a destructor or a native callback). Second Ctrl-C: interrupt at once. SIGTERM: stop at once;
    the outputs keep every result completed so far."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("interrupted: stopping after the current clip (Ctrl-C again to stop now)")

    def on_sigterm(signum, frame):
        stop.set()
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, on_sigint), signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def run(args: argparse.Namespace) -> int:
    from emox_edge.errors import BadInputError
    from emox_edge.output import Display, JsonlWriter, VideoSaver, check_outputs_not_inputs

    if args.max_clips is not None and args.max_clips < 1:
        raise BadInputError(f"--max-clips must be >= 1, got {args.max_clips}")
    if not args.window > 0:
        raise BadInputError(f"--window must be a number of seconds > 0, got {args.window}")
    options = options_from_args(args)  # every option is checked here, before anything is opened
    source = _source(args)
    subtitle = args.subtitle
    demo = args.camera is None and args.source is None and isinstance(source, str)
    if demo:
        # The demo clip: show what the SDK does end to end, and leave a video the user can open.
        args.default_tasks = DEMO_TASKS  # the words come from the bundle's speech recognition
        args.save = args.save or DEMO_SAVE
    tasks = tasks_from_args(args)
    check_outputs_not_inputs([args.jsonl, args.save], [source])  # an output must never destroy an input
    writer = JsonlWriter(args.jsonl) if args.jsonl else None
    saver = VideoSaver(args.save) if args.save else None
    display = Display() if args.show else None
    state = {"results": 0, "failed": 0}
    keep = False
    try:
        with _stop_signals() as stop:
            code = _loop(args, options, source, tasks, subtitle, writer, saver, display, stop, state)
        keep = True
        if state["failed"]:
            log.error("%d of %d clips failed (see the ERROR lines)", state["failed"], state["results"])
            return 2
        return code
    except KeyboardInterrupt:
        keep = True  # Ctrl-C / SIGTERM: keep everything analysed so far
        raise
    finally:
        # a run that failed before producing anything must not replace an existing output file
        keep = keep or state["results"] > 0
        for closer in (writer, saver, display):
            if closer is not None:
                closer.close() if keep or closer is display else closer.abort()
        if saver is not None and keep and saver.frames:
            log.info("annotated video written to %s", args.save)  # stdout holds only result lines


def _loop(args, options, source, tasks, subtitle, writer, saver, display, stop, state) -> int:
    analyzer = None
    try:
        analyzer = open_analyzer(args, options)
        pairs = analyzer.iter_clips(source, tasks, history=args.history, window_s=args.window, vad=args.vad,
                                    max_clips=args.max_clips, source_options={"mic": args.mic}, subtitle=subtitle)
        with contextlib.closing(pairs):  # closes the source too
            for clip, result in pairs:
                state["results"] += 1
                state["failed"] += bool(result.error)
                print(result.line(), flush=True)
                if writer is not None:
                    writer.write(result)
                if (saver is not None or display is not None) and not result.error:
                    if not _draw(clip, result, saver, display):
                        break
                del clip, result  # nothing holds a clip while the next one fills
                if stop.is_set():
                    raise KeyboardInterrupt
        return 0
    finally:
        if analyzer is not None:
            analyzer.close()


def _draw(clip, result, saver, display) -> bool:
    frames = clip.frames
    if frames.shape[0] == 0:
        return True
    if saver is not None and saver.frames == 0 and clip.duration > 0 and frames.shape[0] > 1:
        saver.fps = max(min(frames.shape[0] / clip.duration, 60.0), 1.0)
    if saver is not None and clip.audio.size:
        saver.add_audio(clip.audio, clip.sample_rate, clip.start)  # the source's sound, muxed in
    for frame, t in zip(frames, clip.frame_times):
        annotated = result.plot(frame, t=float(t))
        if saver is not None:
            saver.write(annotated, t=float(t))
        if display is not None and not display.show(annotated):
            return False
    return True
