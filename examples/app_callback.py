"""Plug emox-edge into an application loop through a callback.

The analysis runs in a background thread; each result updates the app's state through a callback,
and the app's own loop (here: a text "mood meter" ticking every 200 ms) reads that state whenever it
likes, never blocking on the model.

    python examples/app_callback.py talk.mp4                         # the default bundle
    python examples/app_callback.py talk.mp4 --bundle path/to/bundle
"""

from __future__ import annotations

import argparse
import threading
import time

import emox_edge
from emox_edge.results import ClipResult


class MoodApp:
    """A stand-in for a real application: it keeps the latest mood and shows it on each tick."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mood = "unknown"
        self.updates = 0
        self.done = threading.Event()

    def on_result(self, result: ClipResult) -> None:  # called from the analysis thread
        with self.lock:
            if result.error is None and "emotion" in result.tasks:
                self.mood = result.tasks["emotion"].label or "unknown"
            self.updates += 1

    def tick(self) -> str:
        with self.lock:
            return f"mood: {self.mood} ({self.updates} updates)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="file, camera index or stream URL")
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--window", type=float, default=1.5)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    app = MoodApp()
    analyzer = emox_edge.load(args.bundle, max_new_tokens=16, n_threads=args.n_threads)

    def worker() -> None:
        try:
            for _ in analyzer.stream(args.source, ["emotion"], callback=app.on_result, window_s=args.window):
                pass
        finally:
            app.done.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    while not app.done.is_set():  # the application's own loop
        print(app.tick(), flush=True)
        time.sleep(0.2)
    thread.join()
    analyzer.close()
    print("final " + app.tick())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
