"""Real parity inputs (a real face, real speech) and the metrics of the parity gate.

Frames: ``skimage.data.astronaut()`` (a real face, shipped with scikit-image), eight different crops
stretched to 224x224 as Nano-EmoX's decoder does. Speech: espeak-ng synthesises a sentence (a
subprocess; ``apt-get install espeak-ng``), resampled to 16 kHz, cut into Nano-EmoX's eight 2 s
windows and normalised jointly over the eight (spec 2.3). These are written from the spec on purpose,
independently of the runtime's preprocessing, so the two implementations check each other.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np

log = logging.getLogger(__name__)

SPEECH_TEXT = ("I can't believe you did that for me, thank you so much! "
               "Honestly, I was worried it would all go wrong, but now I feel wonderful.")


class ParityError(RuntimeError):
    """A converted graph does not compute what the PyTorch reference computes (within the thresholds)."""


@dataclass(frozen=True)
class Thresholds:
    """Minimum cosine similarity of every output against the PyTorch reference."""

    fp32_cosine: float = 0.9999
    int8_cosine: float = 0.99

    def for_precision(self, precision: str) -> float:
        return self.fp32_cosine if precision == "fp32" else self.int8_cosine


def constants() -> dict:
    """The Nano-EmoX constants shipped with the runtime (``emox_edge/data/nano_emox.json``)."""
    text = resources.files("emox_edge").joinpath("data/nano_emox.json").read_text(encoding="utf-8")
    return json.loads(text)


def parity_frames(count: int = 8, size: int = 224) -> np.ndarray:
    """uint8 ``[count, size, size, 3]`` RGB: crops of the astronaut photo around her face, stretched."""
    import cv2

    try:
        from skimage import data
    except ImportError as exc:
        raise ImportError("the parity gate's face frames come from scikit-image: pip install 'emox-edge[convert]'") from exc

    image = data.astronaut()  # 512x512x3 uint8, face around (x 160..300, y 40..200)
    frames = []
    for k in range(count):
        grow = 40 + 12 * k
        x0, y0 = max(0, 150 - grow + 6 * k), max(0, 20 - grow // 2)
        x1, y1 = min(512, 320 + grow), min(512, 230 + grow)
        crop = image[y0:y1, x0:x1]
        if k % 3 == 2:
            crop = crop[:, ::-1]
        frames.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(frames)


def clip_pixels(frames: np.ndarray) -> np.ndarray:
    """uint8 NHWC frames -> CLIP ``pixel_values`` float32 NCHW: (x / 255 - mean) / std."""
    visual = constants()["preprocess"]["visual"]
    x = frames.astype(np.float32) * np.float32(visual["scale"])
    x = (x - np.asarray(visual["mean"], np.float32)) / np.asarray(visual["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def face_pixels(frames: np.ndarray) -> np.ndarray:
    """uint8 NHWC frames -> float32 NCHW in 0..255 (the FaceXFormer branch sees raw values)."""
    return np.ascontiguousarray(frames.astype(np.float32).transpose(0, 3, 1, 2))


def speech_wave(text: str = SPEECH_TEXT, *, sample_rate: int = 16000) -> np.ndarray:
    """float32 mono speech at ``sample_rate`` from espeak-ng."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise FileNotFoundError(
            "espeak-ng not found: the parity gate synthesises real speech with it "
            "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="emox-speech-") as work:
        path = Path(work) / "speech.wav"
        subprocess.run([exe, "-s", "150", "-w", str(path), text], check=True, capture_output=True, timeout=120)
        with wave.open(str(path), "rb") as handle:
            rate, channels, width = handle.getframerate(), handle.getnchannels(), handle.getsampwidth()
            raw = handle.readframes(handle.getnframes())
    if width != 2:
        raise RuntimeError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit PCM")
    audio = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    audio = audio.reshape(-1, channels).mean(axis=1)
    if rate != sample_rate:
        n_out = int(round(len(audio) * sample_rate / rate))
        audio = np.interp(np.arange(n_out) * (rate / sample_rate), np.arange(len(audio)), audio).astype(np.float32)
    return audio


def audio_windows(audio: np.ndarray, *, sample_rate: int = 16000, windows: int = 8, seconds: float = 2.0,
                  eps: float = 1e-7, normalize: bool = True) -> np.ndarray:
    """Nano-EmoX windows ``[8, 32000]``: starts k*max(D-2,0)/8 s, zero-padded, normalised jointly."""
    from fractions import Fraction

    length = int(round(sample_rate * seconds))
    if len(audio) < length:
        audio = np.pad(audio, (0, length - len(audio)))
    duration = Fraction(len(audio), sample_rate)
    span = max(duration - Fraction(seconds).limit_denominator(), Fraction(0))
    out = np.zeros((windows, length), np.float32)
    for k in range(windows):
        start = int(k * span / windows * sample_rate)
        chunk = audio[start:start + length]
        out[k, : len(chunk)] = chunk
    if not normalize:
        return out
    return ((out - out.mean()) / np.sqrt(out.var() + eps)).astype(np.float32)


def compare(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Per output: cosine of the flattened tensors (float64), max abs error, reference max abs."""
    out = {}
    for name, ref in reference.items():
        got = np.asarray(candidate[name], np.float64).ravel()
        ref64 = np.asarray(ref, np.float64).ravel()
        if got.shape != ref64.shape:
            raise ParityError(f"output {name}: shape {np.shape(candidate[name])} != reference {np.shape(ref)}")
        denom = np.linalg.norm(ref64) * np.linalg.norm(got)
        cosine = float(ref64 @ got / denom) if denom > 0 else float(np.array_equal(ref64, got))
        out[name] = {"cosine": cosine, "max_abs_error": float(np.max(np.abs(ref64 - got))),
                     "reference_max_abs": float(np.max(np.abs(ref64)))}
    return out


def gate(graph: str, precision: str, metrics: Mapping[str, dict], thresholds: Thresholds) -> tuple[bool, str]:
    """(passed, message) for one graph at one precision."""
    floor = thresholds.for_precision(precision)
    worst_name = min(metrics, key=lambda n: metrics[n]["cosine"])
    worst = metrics[worst_name]["cosine"]
    ok = bool(np.isfinite(worst) and worst >= floor)
    msg = (f"{graph} {precision}: min cosine {worst:.6f} ({worst_name}) "
           f"{'>=' if ok else '<'} threshold {floor}")
    return ok, msg
