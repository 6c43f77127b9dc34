"""Stream a video file to a running ``emox-edge serve`` as a camera app would, and print each clip's answers.

    emox-edge serve &                                                   # http://127.0.0.1:8765
    python examples/serve_client.py talk.mp4 --task emotion,sentiment   # over the WebSocket, clip by clip
    python examples/serve_client.py talk.mp4 --upload                   # or the whole file in one POST
    python examples/serve_client.py talk.mp4 --url http://box:8765 --token "$EMOX_EDGE_TOKEN" --realtime

Frames go as JPEG, audio as 16 kHz PCM16, both stamped with the file's own times; ``--realtime`` paces
them as a live camera would (otherwise as fast as the connection allows, and the server drops what
it cannot keep up with: see the counters printed at the end).
"""

from __future__ import annotations

import argparse
import json

from emox_edge.capture import Segmentation, resolve_source
from emox_edge.client import Client


def answers(result: dict) -> str:
    parts = [f"{name}={task['label'] or task['text'][:40]}" for name, task in result["tasks"].items()]
    return f"{result['start']:6.1f}-{result['end']:5.1f} s  " + "  ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help="a video (or audio) file to stream")
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the server (default: %(default)s)")
    parser.add_argument("--token", default=None, help="the server's --token, if it has one")
    parser.add_argument("--task", default="emotion,sentiment", help="comma separated tasks (default: %(default)s)")
    parser.add_argument("--window", type=float, default=2.0, help="clip length in seconds (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second to send (default: %(default)s)")
    parser.add_argument("--realtime", action="store_true", help="send at the file's own pace")
    parser.add_argument("--upload", action="store_true", help="POST the whole file to /v1/analyze instead")
    args = parser.parse_args(argv)
    client = Client(args.url, token=args.token)
    tasks = [t for t in args.task.split(",") if t]

    if args.upload:
        result = client.analyze(args.file, tasks)
        for one in result if isinstance(result, list) else [result]:
            print(answers(one))
        return 0

    with client.stream(tasks, window_s=args.window) as session:
        source = resolve_source(args.file, segmentation=Segmentation(mode="fixed", window_s=1.0))
        try:
            for clip in source.clips():  # decoded one second at a time, sent in time order
                keep = _every(clip.frame_times, 1.0 / args.fps)
                session.feed(clip.frames[keep], clip.frame_times[keep], clip.audio, start=clip.start,
                             speed=1.0 if args.realtime else None)
        finally:
            source.close()
        session.end()
        for result in session.results():
            print(answers(result))
        stats = {k: v for k, v in session.stats.items() if k not in ("type", "session")}
    for error in session.errors:
        print(f"server: {error}")
    print(json.dumps(stats))
    return 0


def _every(times, step: float) -> list[int]:
    """Indices of frames at least ``step`` seconds apart."""
    keep, last = [], None
    for i, t in enumerate(times):
        if last is None or t - last >= step - 1e-6:
            keep.append(i)
            last = t
    return keep


if __name__ == "__main__":
    raise SystemExit(main())
