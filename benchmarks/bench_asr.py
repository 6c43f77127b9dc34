"""Speech recognition on this CPU: real-time factor, live latency, added memory and WER per Whisper model.

    python benchmarks/bench_asr.py [--models base tiny.en] [--threads 1 2] [--out out/bench-asr.json]

Speech: 12 English sentences from espeak-ng, four voices at 130-190 words/minute (~36 s), plus six
German, French and Spanish sentences for language identification (base only). Each configuration
(model x threads x encoder context) runs in a fresh child process, so its resident memory is its own:

- ``rtf``: transcription time / audio time, one ``transcribe`` call per sentence with the VAD's
  spans, as the live loop calls it (the encoder's cost does not shrink with a short utterance when
  the context is Whisper's full 30 s window: compare the "30 s" rows).
- ``rtf_30s``: the same sentences as one ~40 s stream (a long file clip, 0.5 s pauses): windows of up
  to 30 s. ``wer_stream``: that stream's WER; ``wer_run_on``: the sentences 50 ms apart, one long
  voiced span that the windows must cut.
- ``latency``: the live loop with 4 s windows (``SpeechStage``, carry-over on), a 1 s pause after
  each sentence: time from the end of a sentence to its transcript, i.e. waiting for the window
  that ends the utterance plus the transcription (mean and max).
- ``added RSS``: resident memory minus before importing CTranslate2: after the sentences (the live
  case), after everything (the 40 s stream's 30 s windows too) and the peak (VmHWM); the JSON also
  splits off the library's own share (``rss_library_mib``) and the loaded model's (``rss_model_mib``).
- ``WER``: corpus word error rate of the per-sentence transcripts (punctuation and case ignored).

Writes the JSON to ``--out`` and prints a markdown table. Nothing here is a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.testing.speech import ENGLISH, SR, espeak, word_errors, words  # noqa: E402

OTHER = [
    ("Guten Morgen! Wie geht es dir heute? Ich freue mich sehr, dich zu sehen.", ("-v", "de"), "de"),
    ("Kannst du mir bitte helfen, diese Kisten zum Auto zu tragen?", ("-v", "de", "-s", "140"), "de"),
    ("Vielen Dank, dass du zu meiner Geburtstagsfeier gekommen bist.", ("-v", "de+f3"), "de"),
    ("Bonjour, comment allez-vous? Je suis très content de vous voir.", ("-v", "fr"), "fr"),
    ("Buenos días, ¿cómo estás? Estoy muy feliz de verte.", ("-v", "es"), "es"),
    ("Ich habe meine Schlüssel verloren und bin sehr traurig.", ("-v", "de+m3"), "de"),
]


def rss_mib() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def child(config: dict, data: Path) -> dict:
    """One configuration in this (fresh) process."""
    from emox_edge.speech import SpeechOptions, SpeechStage, Transcriber  # numpy + our modules, no CTranslate2 yet
    from emox_edge.vad import SileroVAD

    vad = SileroVAD(config["vad"], n_threads=1)
    clips = np.load(data, allow_pickle=True)
    english = list(clips["english"])
    other = list(clips["other"])
    rss0, _ = rss_mib()
    import ctranslate2  # noqa: F401  (its libraries: oneDNN / OpenMP runtime)

    rss_lib, _ = rss_mib()
    started = time.perf_counter()
    model = Transcriber.from_dir(config["dir"], n_threads=config["threads"], context_pad_s=config["context_pad_s"],
                                 beam_size=config.get("beam_size", 2))
    load_s = time.perf_counter() - started
    rss_loaded, _ = rss_mib()
    options = SpeechOptions()
    spans = [vad.speech_segments(a, SR) for a in english]
    model.transcribe(english[0], segments=spans[0], options=options)  # warm-up (allocations, caches)
    total, hyps = 0.0, []
    for audio, span in zip(english, spans):
        t0 = time.perf_counter()
        hyps.append(model.transcribe(audio, segments=span, options=options).text)
        total += time.perf_counter() - t0
    audio_s = sum(len(a) for a in english) / SR
    rss_sentences, _ = rss_mib()
    ref_words = [words(t) for t, _ in ENGLISH]
    errors = sum(word_errors(r, words(h)) for r, h in zip(ref_words, hyps))
    pause = np.zeros(SR // 2, np.float32)
    stream = np.concatenate([x for a in english for x in (a, pause)])
    t0 = time.perf_counter()
    long_text = model.transcribe(stream, segments=vad.speech_segments(stream, SR), options=options).text
    rtf_30s = (time.perf_counter() - t0) / (len(stream) / SR)
    all_words = [w for r in ref_words for w in r]
    # run-on: the sentences 50 ms apart, so the VAD hears one long span and the windows must cut it
    run_on = np.concatenate([x for a in english for x in (a, pause[: SR // 20])])
    run_on_text = model.transcribe(run_on, segments=vad.speech_segments(run_on, SR), options=options).text
    latency = live_latency(SpeechStage(model, options), vad, english)
    languages = []
    if model.multilingual:
        for audio, (_, _, code) in zip(other, OTHER):
            got = model.transcribe(audio, segments=vad.speech_segments(audio, SR), options=options)
            languages.append({"expected": code, "got": got.language, "p": round(got.language_probability, 3),
                              "text": got.text})
    rss_end, hwm = rss_mib()
    return {**{k: v for k, v in config.items() if k not in ("dir", "vad")},
            "load_s": round(load_s, 2), "audio_s": round(audio_s, 1), "rtf": round(total / audio_s, 3),
            "rtf_30s": round(rtf_30s, 3),
            "wer_stream": round(word_errors(all_words, words(long_text)) / len(all_words), 4),
            "wer_run_on": round(word_errors(all_words, words(run_on_text)) / len(all_words), 4),
            "latency_mean_s": latency[0], "latency_max_s": latency[1],
            "rss_sentences_mib": round(rss_sentences - rss0, 1), "rss_library_mib": round(rss_lib - rss0, 1), "rss_model_mib": round(rss_loaded - rss_lib, 1), "rss_added_mib": round(rss_end - rss0, 1),
            "rss_peak_added_mib": round(hwm - rss0, 1), "wer": round(errors / sum(map(len, ref_words)), 4),
            "hypotheses": hyps, "language_id": languages}


def live_latency(stage, vad, english: list[np.ndarray], window_s: float = 4.0) -> tuple[float, float]:
    """Sentences with 1 s pauses, cut into fixed windows: end of each sentence -> its transcript."""
    pause = np.zeros(SR, np.float32)
    ends, stream = [], []
    at = 0
    for audio in english:
        stream += [audio, pause]
        at += len(audio)
        ends.append(at / SR)
        at += len(pause)
    stream = np.concatenate(stream)
    step = int(window_s * SR)
    waits, pending = [], list(ends)
    for i in range(0, len(stream), step):
        clip = stream[i: i + step]
        start, end = i / SR, (i + len(clip)) / SR
        t0 = time.perf_counter()
        out = stage.transcribe_clip(clip, SR, vad.speech_segments(clip, SR), live=True, clip_start=start, clip_end=end)
        compute = time.perf_counter() - t0
        while out.text and pending and pending[0] <= end:  # every sentence ended by now came out in this clip
            waits.append(end - pending.pop(0) + compute)
    return round(float(np.mean(waits)), 2), round(float(np.max(waits)), 2)


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    import ctranslate2

    return {"cpu": model, "isa": isa, "cores": os.cpu_count(), "ctranslate2": ctranslate2.__version__,
            "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def render(report: dict) -> str:
    lines = [f"CPU: {report['machine']['cpu']} ({', '.join(report['machine']['isa'])}), load {report['machine']['load_avg_1m']}",
             "", "| model | threads | beams | encoder context | RTF per sentence | RTF 40 s stream | live latency mean / max (s) "
             "| added RSS MiB: sentences / all (peak) | of which library / model | WER | WER 40 s stream / run-on |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        context = "30 s" if r["context_pad_s"] is None else f"speech + {r['context_pad_s']:g} s"
        lines.append(f"| {r['model']} | {r['threads']} | {r.get('beam_size', 2)} | {context} | {r['rtf']:.3f} | {r['rtf_30s']:.3f} | "
                     f"{r['latency_mean_s']:.2f} / {r['latency_max_s']:.2f} | {r['rss_sentences_mib']:.0f} / {r['rss_added_mib']:.0f} "
                     f"({r['rss_peak_added_mib']:.0f}) | {r['rss_library_mib']:.0f} / {r['rss_model_mib']:.0f} | {r['wer']:.3f} | "
                     f"{r.get('wer_stream', float('nan')):.3f} / {r.get('wer_run_on', float('nan')):.3f} |")
    ids = [x for r in report["runs"] for x in r["language_id"]][: len(OTHER)]
    if ids:
        right = sum(x["expected"] == x["got"] for x in ids)
        lines += ["", f"Language identification (base): {right}/{len(ids)} right: "
                  + ", ".join(f"{x['expected']}->{x['got']} ({x['p']:.2f})" for x in ids)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--beams", nargs="+", type=int, default=[2], help="beam sizes (1: greedy; default 2)")
    parser.add_argument("--context-pads", nargs="+", type=float, default=None,
                        help="seconds of silence after the speech in the encoder's context (default: the runtime's)")
    parser.add_argument("--full-context", action="store_true", default=True,
                        help="also run base with Whisper's full 30 s encoder window (the default is speech + 3 s)")
    parser.add_argument("--no-full-context", dest="full_context", action="store_false")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-asr.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child[0]), Path(args.child[1]))))
        return 0
    from converters.lite import sources
    from converters.speech import fetch_whisper
    from emox_edge.speech.transcriber import CONTEXT_PAD_S

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "clips.npz"
        english = [espeak(t, *a, folder=folder) for t, a in ENGLISH]
        other = [espeak(t, *a, folder=folder) for t, a, _ in OTHER]
        np.savez(data, english=np.array(english, dtype=object), other=np.array(other, dtype=object))
        vad = str(sources.fetch("silero-vad"))
        configs = []
        for model in args.models:
            contexts = (args.context_pads or [CONTEXT_PAD_S]) + ([None] if args.full_context and model == "base" else [])
            for context in contexts:
                for threads in args.threads:
                    for beams in args.beams:
                        configs.append({"model": model, "threads": threads, "context_pad_s": context, "beam_size": beams,
                                        "dir": str(fetch_whisper(model)), "vad": vad})
        runs = []
        for config in configs:
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(config), str(data)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"{config['model']} x {config['threads']}: {proc.stderr[-2000:]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{config['model']} threads={config['threads']} beams={config['beam_size']} context={config['context_pad_s']}: "
                  f"rtf {runs[-1]['rtf']}, wer {runs[-1]['wer']}", file=sys.stderr)
    report = {"machine": cpu_info(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(render(report))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
