"""Real speech with known text for speech-recognition tests and benchmarks: espeak-ng sentences and
word error rate."""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import numpy as np

SR = 16000

# Sentences with known text, each with its espeak-ng voice/rate arguments (words per minute; espeak's
# default is 175): four voices and several rates.
ENGLISH = [
    ("Could you please help me carry these boxes to the car?", ()),
    ("Thank you so much for coming to my birthday party.", ("-v", "en+f3", "-s", "150")),
    ("Hello there! Good morning, how are you today?", ("-v", "en-us+m3", "-s", "190")),
    ("I am really worried about the exam tomorrow.", ("-v", "en+f4", "-s", "130")),
    ("This is the worst service I have ever had in my life.", ("-v", "en-us", "-s", "160")),
    ("Please turn off the lights when you leave the room.", ("-v", "en+m7",)),
    ("We won the game last night and everyone was cheering.", ("-v", "en+f2", "-s", "170")),
    ("I really need your help with this heavy suitcase.", ()),
    ("She told me the news and I could not stop crying.", ("-v", "en-us+f3", "-s", "150")),
    ("Why did nobody tell me about the meeting this morning?", ("-v", "en+m3", "-s", "180")),
    ("The train was late again, so I missed my interview.", ("-v", "en+f4",)),
    ("I am so proud of you for finishing the marathon.", ("-v", "en-us+m7", "-s", "140")),
]


def espeak(text: str, *args: str, folder: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng (voice/rate in ``args``), as 16 kHz float32."""
    from emox_edge.speech.features import resample

    out = Path(folder) / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(out), *args, text], check=True, capture_output=True)
    with wave.open(str(out)) as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32768.0
    return resample(pcm, rate)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; "I'm" and "I am" count the same."""
    text = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("’", "'"))
    for short, full in (("i'm", "i am"), ("can't", "cannot"), ("can not", "cannot"), ("it's", "it is"),
                        ("don't", "do not"), ("you're", "you are"), ("we're", "we are"), ("couldn't", "could not")):
        text = re.sub(rf"\b{short}\b", full, text)
    return text.split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + insertions + deletions)."""
    prev = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ref != hyp))
        prev = cur
    return prev[-1]


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate: ``word_errors`` / reference length."""
    return word_errors(reference, hypothesis) / max(1, len(reference))
