"""Which language core should the lite bundle ship? Quality per task and time per clip, on the evaluation set.

benchmarks/data/lite_eval.json: scripted clips (perception summary as the lite bundle writes it, a
transcript, the answers a person would give). Each candidate core (GGUF through emox_edge.llm) answers,
greedily, with one llama.cpp thread, the questions of benchmarks/data/lite_prompts.json:

- intent: label grammar over the 20 MIntRec labels, from the words + perception (clips with words only;
  without words the task abstains and the core is not asked); score: the label is one a person accepts;
- sentiment: label grammar over positive/negative/neutral, whole clip;
- open_vocab_emotion: emox_edge.lite.vocabulary grammar; valid = 1-3 listed, distinct words; hit = a
  word a person accepts; first = the first word is one;
- empathize: a <think> chain capped at max_think_tokens and closed by force, then the reply; pass =
  non-empty, no tags, <= max_words, acknowledges the case (one of its phrases), none of its avoid list;
- text_sentiment: the words alone, vs VADER (emox_edge.lite.text_sentiment) and the expected label.

Times: the shared context is prefilled once per clip (its own call), every question branches from it
in the KV cache; "clip ms" = shared prefill + intent + open_vocab + empathize (what the pipeline asks).

    nice -n 10 .venv/bin/python -m benchmarks.bench_lite_quality [--models smollm2-135m,qwen2.5-0.5b,qwen2.5-1.5b]
        [--limit N] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks._common import cpu_model, cpu_simd, load_average, markdown_table
from benchmarks._lite_eval import (REPLY_RULES, chatml, check_reply, context_text, face_valence, has_evidence,
                                   label_ok, load_eval, load_prompts, perception_of)
from emox_edge.lite.tables import intent_labels
from emox_edge.lite.text_sentiment import fuse_valence, sentiment_of, text_valence
from emox_edge.lite.vocabulary import load_emotion_words, matches_grammar, open_vocab_grammar, parse_open_vocab_words
from emox_edge.llm import LanguageCore, label_grammar

log = logging.getLogger("bench_lite_quality")
SENTIMENTS = ("positive", "negative", "neutral")
TASKS = ("intent", "sentiment", "open_vocab", "empathize", "text_sentiment")
DEFAULT_TASKS = ("intent", "open_vocab", "empathize", "text_sentiment")


def _smollm2() -> Path:
    from converters.lite.sources import fetch

    return fetch("smollm2-135m")


def _qwen05() -> Path:
    from converters.lite.qwen05 import fetch_qwen25_coder_05b_gguf

    return fetch_qwen25_coder_05b_gguf()


def _qwen15() -> Path:
    from converters.lite.sources import fetch_qwen25_coder_gguf

    return fetch_qwen25_coder_gguf()


CANDIDATES: dict[str, Callable[[], Path]] = {"smollm2-135m": _smollm2, "qwen2.5-0.5b": _qwen05, "qwen2.5-1.5b": _qwen15}


def tag_token_ids(core: LanguageCore) -> list[int]:
    """Tokens whose text holds "<" (pieces of <think>, </think>, <|im_end|> written as text).

    Banned in the reply (logit bias -inf): a core that never saw think tags (Qwen2.5, SmolLM2) tends to
    open a new "<think>" right after the forced "</think>", leaving an empty or tagged reply.
    """
    return [i for i in range(core.n_vocab) if "<" in core.detokenize([i], special=False)]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class CaseRunner:
    """Asks one core the questions of one case, branching from a shared context prefill."""

    def __init__(self, core: LanguageCore, prompts: dict[str, Any], tasks: tuple[str, ...] = ()) -> None:
        self.core = core
        self.asked = tasks or DEFAULT_TASKS
        self.prompts = prompts
        self.tasks = prompts["tasks"]
        self.words = load_emotion_words()
        self.word_set = frozenset(self.words)
        self.vocab_grammar = open_vocab_grammar(self.words)
        self.intent_labels, self.candidates = intent_labels("mintrec")
        self.intent_grammar = label_grammar(self.intent_labels)
        self.sentiment_grammar = label_grammar(SENTIMENTS)
        self.no_tags = {t: float("-inf") for t in tag_token_ids(core)} if "empathize" in self.asked else {}
        self._prior = None  # the intent labels' log-likelihoods under a content-free context

    def _ask(self, head: str, question: str, tail: str, **kwargs):
        t0 = time.perf_counter()
        out = self.core.generate([head, question + tail], temperature=0.0, seed=0, **kwargs)
        return out, _ms(t0)

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        head, tail = chatml(self.prompts["system"], context_text(case, self.prompts))
        res: dict[str, Any] = {"id": case["id"], "ms": {}}
        t0 = time.perf_counter()
        self.core.generate([head], max_new_tokens=0)  # the shared prefill, once per clip
        res["ms"]["prefill"] = _ms(t0)
        if "intent" in self.asked and case["transcript"].strip():
            cfg = self.tasks["intent"]
            out, res["ms"]["intent"] = self._ask(head, cfg["question"].format(candidate_labels=self.candidates), tail,
                                                 grammar=self.intent_grammar, max_new_tokens=cfg["max_new_tokens"])
            res["intent"] = out.text.strip()
            # the SDK's way: every label scored by likelihood, and the same calibrated by the labels'
            # prior under a content-free context (contextual calibration, Zhao et al. 2021)
            question = cfg["question"].format(candidate_labels=self.candidates)
            cands = [f"{label}<|im_end|>" for label in self.intent_labels]
            t0 = time.perf_counter()
            scores = self.core.score([head, question + tail], cands)
            res["ms"]["intent_likelihood"] = _ms(t0)
            res["intent_likelihood"] = self.intent_labels[scores.best]
            if self._prior is None:
                null_head, null_tail = chatml(self.prompts["system"], "")
                self._prior = self.core.score([null_head, question + null_tail], cands).logprobs
            calibrated = [a - b for a, b in zip(scores.logprobs, self._prior)]
            res["intent_calibrated"] = self.intent_labels[max(range(len(cands)), key=calibrated.__getitem__)]
        if "sentiment" in self.asked:
            cfg = self.tasks["sentiment"]
            out, res["ms"]["sentiment"] = self._ask(head, cfg["question"], tail, grammar=self.sentiment_grammar,
                                                    max_new_tokens=cfg["max_new_tokens"])
            res["sentiment"] = out.text.strip()
        if "open_vocab" in self.asked:
            self._open_vocab(head, tail, res)
        if "empathize" in self.asked:
            res["think"], res["reply"], res["reply_truncated"], res["ms"]["empathize"] = self._empathize(head, tail)
        if "text_sentiment" in self.asked and case["transcript"].strip():
            cfg = self.tasks["text_sentiment"]
            t0 = time.perf_counter()
            th, tt = chatml(self.prompts["system"], "")
            out = self.core.generate([th, cfg["prompt"].format(transcript=case["transcript"].strip()) + tt],
                                     grammar=self.sentiment_grammar, max_new_tokens=cfg["max_new_tokens"],
                                     temperature=0.0, seed=0)
            res["ms"]["text_sentiment"] = _ms(t0)
            res["text_sentiment"] = out.text.strip()
        return res

    def _open_vocab(self, head: str, tail: str, res: dict[str, Any]) -> None:
        cfg = self.tasks["open_vocab_emotion"]
        out, res["ms"]["open_vocab"] = self._ask(head, cfg["question"], tail, grammar=self.vocab_grammar,
                                                 max_new_tokens=cfg["max_new_tokens"],
                                                 repeat_penalty=cfg["repeat_penalty"])
        res["open_vocab_text"] = out.text
        res["open_vocab"] = list(parse_open_vocab_words(out.text, self.word_set))
        res["open_vocab_valid"] = matches_grammar(out.text, self.word_set) and bool(res["open_vocab"])

    def _empathize(self, head: str, tail: str) -> tuple[str, str, bool, float]:
        cfg = self.tasks["empathize"]
        opened, closed = cfg["think_open"], cfg["think_close"]
        t0 = time.perf_counter()
        think = self.core.generate([head, cfg["question"] + tail + opened], temperature=0.0, seed=0,
                                   max_new_tokens=cfg["max_think_tokens"], stop=["</think>", "<think>"],
                                   repeat_penalty=cfg["repeat_penalty"])
        chain = think.text.strip()  # capped by max_think_tokens; the close tag is forced below
        reply = self.core.generate([head, cfg["question"] + tail + opened + chain + closed], temperature=0.0,
                                   seed=0, max_new_tokens=cfg["max_new_tokens"], logit_bias=self.no_tags,
                                   repeat_penalty=cfg["repeat_penalty"])
        return chain, reply.text.strip(), reply.stop_reason == "length", _ms(t0)


def run_model(name: str, path: Path, cases: list[dict], prompts: dict, threads: int,
              tasks: tuple[str, ...]) -> dict[str, Any]:
    rows = []
    t_load = time.perf_counter()
    with LanguageCore.from_file(path, n_ctx=1024, n_threads=threads) as core:
        load_ms = _ms(t_load)
        runner = CaseRunner(core, prompts, tasks)
        for i, case in enumerate(cases, 1):
            rows.append(runner.run(case))
            log.info("%s %d/%d %s: %s | %s | %s | %.0f ms", name, i, len(cases), case["id"], rows[-1].get("intent"),
                     rows[-1].get("open_vocab_text"), (rows[-1].get("reply") or "")[:70], sum(rows[-1]["ms"].values()))
    return {"model": name, "path": str(path), "size_mb": round(path.stat().st_size / 1e6, 1),
            "load_ms": round(load_ms), "answers": rows}


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values)) if values else None


def score(run: dict[str, Any], cases: dict[str, dict], reply_sets: dict) -> dict[str, Any]:
    """Per-task scores and median times of one model's answers."""
    intent, sent, text_sent, valid, hit, first, reply, parts = [], [], [], [], [], [], [], {}
    agree, clip_ms, intent_lh, intent_cal = [], [], [], []
    times: dict[str, list[float]] = {}
    for row in run["answers"]:
        want = cases[row["id"]]["expected"]
        for task, ms in row["ms"].items():
            times.setdefault(task, []).append(ms)
        clip_ms.append(sum(row["ms"].get(k, 0.0) for k in ("prefill", "intent", "open_vocab", "empathize")))
        if "intent" in row and want["intent"]:
            intent.append(label_ok(row["intent"], want["intent"]))
            intent_lh.append(label_ok(row["intent_likelihood"], want["intent"]))
            intent_cal.append(label_ok(row["intent_calibrated"], want["intent"]))
        if "sentiment" in row and want["sentiment"]:
            sent.append(label_ok(row["sentiment"], want["sentiment"]))
        if "text_sentiment" in row and want["text_sentiment"]:
            text_sent.append(label_ok(row["text_sentiment"], want["text_sentiment"]))
            agree.append(row["text_sentiment"] == sentiment_of(text_valence(cases[row["id"]]["transcript"]), 0.05))
        if "open_vocab" in row:
            valid.append(row["open_vocab_valid"])
        if "open_vocab" in row and want["open_vocab"]:
            hit.append(any(w in want["open_vocab"] for w in row["open_vocab"]))
            first.append(bool(row["open_vocab"]) and row["open_vocab"][0] in want["open_vocab"])
        if "reply" in row and want["reply"]:
            check = check_reply(row["reply"], want["reply"], reply_sets, cases[row["id"]]["transcript"])
            reply.append(check.passed)
            for key in REPLY_RULES:
                parts.setdefault(key, []).append(getattr(check, key))
    return {
        "model": run["model"], "size_mb": run["size_mb"], "load_ms": run["load_ms"],
        "intent_acc": _rate(intent), "intent_acc_likelihood": _rate(intent_lh),
        "intent_acc_calibrated": _rate(intent_cal), "n_intent": len(intent), "sentiment_acc": _rate(sent),
        "text_sentiment_acc": _rate(text_sent), "text_sentiment_agree_vader": _rate(agree),
        "open_vocab_valid": _rate(valid), "open_vocab_hit": _rate(hit), "open_vocab_first": _rate(first),
        "empathy_pass": _rate(reply), **{f"empathy_{k}": _rate(v) for k, v in parts.items()},
        "ms_median": {k: _median(v) for k, v in times.items()}, "clip_ms_median": _median(clip_ms),
        "n_cases": len(run["answers"]),
    }


def rule_baselines(cases: list[dict], weights: dict[str, float] | None = None) -> dict[str, Any]:
    """No language model: perception emotion, sentiment without / with VADER's text valence, VADER alone."""
    emotion, sent_pv, sent_pvt, vader = [], [], [], []
    for case in cases:
        want = case["expected"]
        if not has_evidence(case) or want["emotion"] is None:
            continue
        p = perception_of(case)
        emotion.append(p.emotion_label() in want["emotion"])
        voice = case["perception"]["voice"]
        face, v = face_valence(case), (voice["valence"] if voice else None)
        text = text_valence(case["transcript"])
        sent_pv.append(sentiment_of(fuse_valence(face, v, None, weights)) in want["sentiment"])
        sent_pvt.append(sentiment_of(fuse_valence(face, v, text, weights)) in want["sentiment"])
        if text is not None and want["text_sentiment"]:
            vader.append(sentiment_of(text, 0.05) in want["text_sentiment"])
    return {"emotion_acc_perception": _rate(emotion), "sentiment_acc_face_voice": _rate(sent_pv),
            "sentiment_acc_face_voice_vader": _rate(sent_pvt), "text_sentiment_acc_vader": _rate(vader),
            "n": len(emotion), "n_text": len(vader)}


def print_tables(scores: list[dict], baselines: dict) -> None:
    print(markdown_table(
        ["core", "MB", "intent acc (grammar)", "intent acc (likelihood)", "intent acc (calibrated)", "sentiment acc", "open-vocab valid", "open-vocab hit", "first word ok",
         "empathy pass", "text sentiment acc (LM)", "LM = VADER"],
        [[s["model"], s["size_mb"], s["intent_acc"], s.get("intent_acc_likelihood"), s.get("intent_acc_calibrated"),
          s["sentiment_acc"], s["open_vocab_valid"], s["open_vocab_hit"],
          s["open_vocab_first"], s["empathy_pass"], s["text_sentiment_acc"], s["text_sentiment_agree_vader"]]
         for s in scores]))
    print()
    print(markdown_table(
        ["core", "shared prefill ms", "intent ms", "sentiment ms", "open-vocab ms", "empathize ms", "text sentiment ms",
         "clip ms (prefill+intent+open-vocab+empathize)"],
        [[s["model"], *(s["ms_median"].get(k) for k in ("prefill", "intent", "sentiment", "open_vocab", "empathize",
                                                           "text_sentiment")), s["clip_ms_median"]] for s in scores]))
    print()
    print(markdown_table(["empathy rule", *[s["model"] for s in scores]],
                         [[k, *[s.get(f"empathy_{k}") for s in scores]]
                          for k in REPLY_RULES]))
    print()
    print("no language model:", json.dumps(baselines))


def render(paths: list[Path]) -> int:
    """Tables of several saved runs (e.g. one process per core), scored on the cases all of them answered."""
    data = load_eval()
    by_id = {c["id"]: c for c in data["cases"]}
    runs = [run for path in paths for run in json.loads(Path(path).read_text())["runs"]]
    common = set.intersection(*({row["id"] for row in run["answers"]} for run in runs))
    print(f"{len(common)} cases answered by every run: {sorted(common)}")
    print_tables([score({**run, "answers": [r for r in run["answers"] if r["id"] in common]}, by_id,
                        data["reply_sets"]) for run in runs],
                 rule_baselines([c for c in data["cases"] if c["id"] in common]))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CANDIDATES), help=f"comma-separated, from {list(CANDIDATES)}")
    parser.add_argument("--limit", type=int, default=None,
                        help="N cases with evidence spread evenly over the set (it is grouped by kind; default: all)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help=f"comma-separated, from {list(TASKS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", type=Path, default=None, help="prompts file (default: data/lite_prompts.json)")
    parser.add_argument("--cases", default=None, help="comma-separated case ids (instead of --limit)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--render", type=Path, nargs="+", help="print the tables of saved --json runs (scored on "
                        "the cases every run answered) instead of running")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.render:
        return render(args.render)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in CANDIDATES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(CANDIDATES)}")
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if set(tasks) - set(TASKS):
        parser.error(f"unknown task(s) {sorted(set(tasks) - set(TASKS))}; choose from {list(TASKS)}")
    data = load_eval()
    prompts = load_prompts(args.prompts) if args.prompts else load_prompts()
    with_evidence = [c for c in data["cases"] if has_evidence(c)]
    asked = with_evidence
    if args.limit and args.limit < len(with_evidence):
        step = len(with_evidence) / args.limit
        asked = [with_evidence[int(i * step)] for i in range(args.limit)]
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        asked = [c for c in with_evidence if c["id"] in wanted]
        if len(asked) != len(wanted):
            parser.error(f"unknown or evidence-less case ids in {wanted}")
    by_id = {c["id"]: c for c in data["cases"]}
    print(f"cases: {len(data['cases'])}, {len(with_evidence)} with evidence ({len(data['cases']) - len(with_evidence)} "
          f"abstain), {len(asked)} asked; tasks {','.join(tasks)}; cpu: {cpu_model()} simd={cpu_simd()} "
          f"threads={args.threads} load={load_average()}")
    runs, scores = [], []
    for name in models:
        t0 = time.perf_counter()
        run = run_model(name, CANDIDATES[name](), asked, prompts, args.threads, tasks)
        run["wall_s"] = round(time.perf_counter() - t0, 1)
        runs.append(run)
        scores.append(score(run, by_id, data["reply_sets"]))
        print(f"{name}: {len(asked)} cases in {run['wall_s']} s (load {load_average()})", flush=True)
    baselines = rule_baselines(data["cases"])
    print_tables(scores, baselines)
    if args.json:
        args.json.write_text(json.dumps({"scores": scores, "baselines": baselines, "runs": runs,
                                         "cpu": cpu_model(), "simd": cpu_simd(), "threads": args.threads}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
