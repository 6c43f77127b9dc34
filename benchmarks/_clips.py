"""Generated clips for the benchmarks: a real face (scikit-image's astronaut) and real speech (espeak-ng).

``bench_clip(k)`` gives the k-th of a fixed, varied set: different sentences (their emotional tone
differs), voices, speaking rates and pitches, face framing and motion; the subtitle is the sentence,
as a transcript would be. ``face_frames(n, faces=...)`` gives frames with 1 or 4 faces for the live
loop. Everything is deterministic.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SENTENCES = (
    "I can't believe you did this to me again, I am so angry right now.",
    "This is the best day of my life, I just got the job I wanted!",
    "I miss her so much, everything feels empty since she left.",
    "Wait, what? You're telling me the meeting was moved to today?",
    "Could you please help me carry these boxes to the car?",
    "Honestly, I think your plan is not going to work at all.",
    "Thank you so much for the lovely gift, you really shouldn't have.",
    "I'm worried the results will not be ready before the deadline.",
    "Let's meet at the station at nine and take the early train together.",
    "Oh great, another rainy weekend, exactly what I needed.",
    "Don't touch that, it's dangerous, step away from the edge!",
    "Well, it is what it is, nothing more to say about it.",
)
VOICES = ("en", "en-us", "en+f3", "en+m3")


@lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    from converters.testing.media import astronaut_rgb

    return astronaut_rgb()


def _face(k: int, n: int, size: tuple[int, int], *, zoom0: float, phase: float) -> np.ndarray:
    import cv2

    base = _astronaut()
    width, height = size
    h, w = base.shape[:2]
    t = k / max(n - 1, 1)
    zoom = zoom0 - 0.15 * t
    cw, ch = int(w * zoom), int(h * zoom)
    x0 = int((w - cw) * (0.5 + 0.4 * np.sin(2 * np.pi * (t + phase))) * 0.5)
    y0 = int((h - ch) * 0.25)
    return cv2.resize(base[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)


def face_frames(n: int, *, size: tuple[int, int] = (640, 480), faces: int = 1, seed: int = 0) -> np.ndarray:
    """``[n, H, W, 3]`` uint8 RGB frames showing ``faces`` (1 or 4, in a 2x2 grid) moving faces."""
    if faces not in (1, 4):
        raise ValueError(f"faces must be 1 or 4, got {faces}")
    width, height = size
    out = np.empty((n, height, width, 3), np.uint8)
    for k in range(n):
        if faces == 1:
            out[k] = _face(k, n, size, zoom0=0.95, phase=0.1 * seed)
        else:
            cell = (width // 2, height // 2)
            for q in range(4):
                y, x = divmod(q, 2)
                out[k, y * cell[1]:(y + 1) * cell[1], x * cell[0]:(x + 1) * cell[0]] = _face(
                    k, n, cell, zoom0=0.9 + 0.03 * q, phase=0.25 * q + 0.1 * seed)
    return out


def speech(text: str, *, voice: str = "en", speed: int = 150, pitch: int = 50) -> np.ndarray:
    """espeak-ng speech of ``text`` as 16 kHz mono float32."""
    from converters.testing.media import espeak_samples
    from emox_edge.preprocess import resample_sinc

    samples, rate = espeak_samples(text, voice=voice, speed=speed, pitch=pitch)
    return np.asarray(resample_sinc(samples, rate, 16000), np.float32)


def bench_clip(k: int, *, fps: float = 25.0, size: tuple[int, int] = (640, 480)):
    """The k-th benchmark ``Clip``: speech + a moving face over the same span, subtitle = the sentence."""
    from emox_edge.media import Clip

    text = SENTENCES[k % len(SENTENCES)]
    audio = speech(text, voice=VOICES[k % len(VOICES)], speed=135 + 10 * (k % 4), pitch=35 + 7 * (k % 5))
    audio = np.concatenate([np.zeros(4000, np.float32), audio, np.zeros(4000, np.float32)])
    seconds = max(audio.size / 16000, 2.0)
    n = max(int(round(seconds * fps)), 8)
    frames = face_frames(n, size=size, seed=k)
    times = np.arange(n, dtype=np.float64) / fps
    return Clip(frames=frames, frame_times=times, audio=audio, sample_rate=16000, start=0.0, end=seconds,
                subtitle=text, source=f"bench-clip-{k}")


def _clip_path(k: int, folder) -> "Path":
    from pathlib import Path

    return Path(folder) / f"clip-{k:02d}"


def materialize(count: int, folder) -> None:
    """Write clips 0..count-1 under ``folder`` (skipping those already there), so measurement children
    only read them (their peak memory then holds no media-generation libraries)."""
    import json

    for k in range(count):
        path = _clip_path(k, folder)
        if (path / "meta.json").is_file():
            continue
        clip = bench_clip(k)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "frames.npy", clip.frames)
        np.save(path / "audio.npy", clip.audio)
        meta = {"frame_times": clip.frame_times.tolist(), "end": clip.end, "subtitle": clip.subtitle,
                "source": clip.source}
        (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def load_clip(k: int, folder):
    """Clip ``k`` written by ``materialize`` (frames memory-mapped: only the frames used are read)."""
    import json

    from emox_edge.media import Clip

    path = _clip_path(k, folder)
    if not (path / "meta.json").is_file():
        materialize(k + 1, folder)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return Clip(frames=np.load(path / "frames.npy", mmap_mode="r"),
                frame_times=np.asarray(meta["frame_times"], np.float64),
                audio=np.load(path / "audio.npy"), sample_rate=16000, start=0.0, end=float(meta["end"]),
                subtitle=meta["subtitle"], source=meta["source"])
