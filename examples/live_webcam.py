"""Live webcam (and microphone) emotion analysis with an on-screen overlay.

    python examples/live_webcam.py --camera 0 --mic            # the default bundle
    python examples/live_webcam.py --camera 0 --bundle path/to/bundle

Each clip's answer is printed; with a display, the annotated camera image is shown (q quits).
"""

from __future__ import annotations

import argparse

import emox_edge
from emox_edge.capture import Segmentation, resolve_source
from emox_edge.output import Display


def main(argv=None, *, camera_factory=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--mic", action="store_true", help="also listen to the default microphone")
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per clip")
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    # camera_factory replaces cv2.VideoCapture (tests feed a generated video through it)
    source = resolve_source(args.camera, mic=True if args.mic else None, camera_factory=camera_factory,
                            segmentation=Segmentation(window_s=args.window))
    display = Display("emox-edge live")
    with emox_edge.load(args.bundle, n_threads=args.n_threads, max_new_tokens=32) as analyzer:
        for result in analyzer.stream(source, ["emotion", "sentiment"], max_clips=args.max_clips):
            print(result.line(), flush=True)
            if result.frame is not None and not display.show(result.plot()):
                break
    display.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
