"""An empathetic conversation over several turns: each turn is a clip plus what the user said.

    python examples/empathetic_dialogue.py turn1.mp4 "I failed my exam." turn2.mp4 "I studied for weeks."

(``--bundle DIR`` picks a bundle; the default is the lite bundle.)

The dialogue history ("user: ...", "listener: ...") grows with every turn and goes to the model with
the next one, as in AvaMERG.
"""

from __future__ import annotations

import argparse

import emox_edge


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=None, help="bundle directory (default: the lite bundle)")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("turns", nargs="+", metavar="CLIP UTTERANCE", help="pairs of clip file and utterance")
    args = parser.parse_args(argv)
    if len(args.turns) % 2:
        parser.error("turns come in pairs: CLIP UTTERANCE")

    history: list[str] = []
    with emox_edge.load(args.bundle, max_new_tokens=96, n_threads=args.n_threads) as analyzer:
        for path, utterance in zip(args.turns[::2], args.turns[1::2]):
            answer = analyzer.analyze(path, ["empathize"], subtitle=utterance, history=history).tasks["empathize"]
            print(f"user: {utterance}")
            print(f"  (speaker emotion: {answer.label or 'unknown'})")
            print(f"listener: {answer.reply or answer.text}")
            history += [f"user: {utterance}", f"listener: {answer.reply or answer.text}"]
    print(f"{len(history) // 2} turns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
