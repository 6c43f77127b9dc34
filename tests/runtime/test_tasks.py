"""Task requests, Nano-EmoX prompts from the manifest, grammars and answer parsers."""

from __future__ import annotations

import numpy as np
import pytest

from emox_edge.tasks import TaskBook, TaskRequest, parse_tasks, packaged_spec
from emox_edge.tasks import parsers as P


@pytest.fixture(scope="module")
def book() -> TaskBook:
    return TaskBook.from_manifest({})


# ----------------------------------------------------------------------------- requests
def test_task_requests():
    assert TaskRequest.parse("intent:mintrec2") == TaskRequest("intent", "mintrec2")
    assert TaskRequest.parse(" Open-Vocab_Emotion ") == TaskRequest("open_vocab_emotion")
    assert [str(r) for r in parse_tasks("emotion,sentiment:valence:sims")] == ["emotion", "sentiment:valence:sims"]
    with pytest.raises(ValueError, match="valid tasks: sentiment, emotion"):
        TaskRequest.parse("mood")
    with pytest.raises(TypeError, match="a task is a string"):
        TaskRequest.parse(3)
    with pytest.raises(ValueError, match="no task given"):
        parse_tasks([])


def test_all_stands_for_the_six_tasks():
    from emox_edge.results import TASKS

    assert [r.task for r in parse_tasks("all")] == list(TASKS) and len(TASKS) == 6
    assert [str(r) for r in parse_tasks(["emotion:meld", "ALL"])][:2] == ["emotion:meld", "sentiment"]


# ----------------------------------------------------------------------------- questions
def test_questions_come_verbatim_from_the_manifest(book):
    spec = packaged_spec()["tasks"]
    q = book.question(TaskRequest("intent", "mintrec2"))
    assert q.text == "[Intent]recognize speaker's intention from the provided candidate labels: " \
        + spec["intent"]["label_sets"]["mintrec2"]["candidate_labels"] + "."
    assert len(q.labels) == 30 and q.capitalise
    assert len(book.question(TaskRequest("intent")).labels) == 20
    emotion = book.question(TaskRequest("emotion", "meld"))
    assert emotion.text.endswith("candidate labels: anger,joy,sadness,neutral,disgust,fear,surprise.")
    assert book.question(TaskRequest("emotion", "none")).labels == ()
    valence = book.question(TaskRequest("sentiment", "valence:sims"))
    assert "ranging from -1 to 1" in valence.text and "ﬂoating" in valence.text and valence.valence_range == (-1, 1)
    assert book.question(TaskRequest("open_vocab_emotion", "4")).text == spec["open_vocab_emotion"]["prompts"][4]
    assert book.question(TaskRequest("reason")).text.startswith("[Inference]Evaluate all available clues—visual")
    emp = book.question(TaskRequest("empathize"), subtitle="I failed my exam.", history=["user: hi", "listener: hello"])
    assert emp.template == "avamerg"
    assert emp.text.startswith("Context: user: hi\nlistener: hello\ncurrent user input:I failed my exam.\n[Interaction]")
    assert emp.text.endswith("current speaker input is:I failed my exam.")


@pytest.mark.parametrize("spec, match", [
    ("emotion:klingon", "mer, meld, iemocap, none"),
    ("intent:mintrec3", "mintrec, mintrec2"),
    ("sentiment:stars", "three_way, valence"),
    ("sentiment:valence:imdb", "mosi, mosei, sims, simsv2"),
    ("reason:9", "0..3"),
    ("open_vocab_emotion:x", "0..4"),
])
def test_unknown_variants_list_the_valid_ones(book, spec, match):
    with pytest.raises(ValueError, match=match):
        book.question(TaskRequest.parse(spec))


def test_segments_follow_the_template_order(book):
    width = 6
    embeds = {"frame_embeds": np.full((32, width), 1, np.float32), "face_embeds": np.full((4, width), 2, np.float32),
              "audio_embeds": np.full((32, width), 3, np.float32), "fusion_embeds": np.full((1, width), 4, np.float32)}
    q = book.question(TaskRequest("emotion"))
    segs = book.segments(q, subtitle="See you {later}", history=(), embeddings=embeds)
    kinds = [s if isinstance(s, str) else int(s[0, 0]) for s in segs]
    assert kinds[0] == "###Human: The audio and video merged info is: <Multi>"
    assert kinds[1::2] == [4, 3, 2, 1]  # Multi(1) -> Audio(32) -> Face(4) -> Frame(32)
    assert [s.shape[0] for s in segs if not isinstance(s, str)] == [1, 32, 4, 32]
    assert kinds[-1].startswith("</Video>. The subtitle of this video is: <Subtitle>See you {later}</Subtitle>.")
    assert kinds[-1].endswith(q.text + " ###Assistant: ")
    with pytest.raises(ValueError, match="audio_embeds"):
        book.segments(q, subtitle="", history=(), embeddings={**embeds, "audio_embeds": np.zeros((31, width), np.float32)})
    with pytest.raises(ValueError, match="no encoder output 'face_embeds'"):
        book.segments(q, subtitle="", history=(), embeddings={k: v for k, v in embeds.items() if k != "face_embeds"})


def test_grammars_force_the_trained_answer_format(book):
    g = book.grammar(book.question(TaskRequest("emotion", "iemocap")))
    assert g == 'root ::= "The most likely label is " ( "happy" | "sad" | "neutral" | "anger" ) "."\n'
    intent = book.grammar(book.question(TaskRequest("intent")))
    assert '"Ask for help"' in intent and "The" not in intent
    assert book.grammar(book.question(TaskRequest("reason"))) is None
    assert book.grammar(book.question(TaskRequest("sentiment", "valence"))) is None


# ----------------------------------------------------------------------------- parsers
@pytest.mark.parametrize("raw, clean", [
    ("The character's emotional state is happy.###", "The character's emotional state is happy."),
    ("junk<|im_start|>Assistant: Arrange<|im_end|>tail", "Arrange"),
    ("###Human: q ###Assistant: a ###Assistant: final answer ### extra", "final answer"),
    ("  plain  ", "plain"),
])
def test_postprocess_reply(raw, clean):
    assert P.postprocess_reply(raw) == clean


@pytest.mark.parametrize("text, label, valid", [
    ("The most likely label is Happy.", "happy", True),
    ("Worried", "worried", True),
    ("I would say the person seems sad, not happy.", "sad", True),
    ("The character's sentiment state is positive.", "positive", True),
    ("The most likely label is ecstatic.", "ecstatic", False),
    ("", None, False),
])
def test_parse_closed_label(text, label, valid):
    answer = P.parse_label(text, ["neutral", "angry", "happy", "sad", "worried", "surprise", "positive"])
    assert (answer.label, answer.valid) == (label, valid)


def test_parse_intent_prefers_the_longest_label_at_the_same_place():
    labels = ["ask for help", "asking for opinions", "care", "comfort"]
    assert P.parse_label("Ask for help", labels).label == "ask for help"
    assert P.parse_label("Asking for opinions.", labels).label == "asking for opinions"
    assert P.parse_label("He wants to comfort her and show care", labels).label == "comfort"


@pytest.mark.parametrize("text, labels", [
    ("The character's emotional state is {Happy, excited, happy, and relieved}.", ("happy", "excited", "relieved")),
    ("[angry, frustrated]", ("angry", "frustrated")),
    ("sad and lonely", ("sad", "lonely")),
    ("The character's emotional state is .", ("neutral",)),
    ("", ("neutral",)),
])
def test_parse_open_vocab(text, labels):
    assert P.parse_open_vocab(text) == labels


def test_parse_valence():
    assert P.parse_valence("The valence score is -1.25.", low=-3, high=3) == P.ValenceAnswer(-1.25, "negative", True)
    assert P.parse_valence("score 5", low=-1, high=1) == P.ValenceAnswer(1.0, "positive", False)
    assert P.parse_valence("no number", low=-3, high=3) == P.ValenceAnswer(None, None, False)


def test_parse_empathy():
    text = ("<think>Firstly, the event scenario of this conversation is: exam\nSecondly, the emotion of the speaker is "
            "Sad\nThirdly, the emotion cause is failing\nFourthly, the goal to response is comfort</think>\n I'm sorry.")
    answer = P.parse_empathy(text)
    assert answer.emotion == "sad" and answer.reply == "I'm sorry." and answer.think.startswith("Firstly")
    assert P.parse_empathy("Just a reply.") == P.EmpathyAnswer(None, "Just a reply.", None)
    assert P.parse_empathy("<think>unfinished chain").reply == ""
    # the prompt opened <think>: a reply that only closes it, or leaves stray tags behind
    answer = P.parse_empathy("the emotion of the speaker is Happy</think>\n Great news!</think>")
    assert answer == P.EmpathyAnswer("the emotion of the speaker is Happy", "Great news!", "happy")
    assert P.parse_empathy("<think>a</think> b <think></think>c").reply == "b c"


def test_book_parse_makes_typed_results(book):
    r = book.parse(book.question(TaskRequest("intent")), "Arrange###")
    assert (r.task, r.label, r.valid, r.text) == ("intent", "arrange", True, "Arrange")
    r = book.parse(book.question(TaskRequest("open_vocab_emotion")), "The character's emotional state is {calm, Calm}.")
    assert r.labels == ("calm",) and r.label == "calm"
    r = book.parse(book.question(TaskRequest("sentiment", "valence")), "The valence score is 2.50.")
    assert r.score == 2.5 and r.label == "positive"
    r = book.parse(book.question(TaskRequest("empathize")), "<think>the emotion of the speaker is Angry</think>\n Calm down.")
    assert r.label == "angry" and r.reply == "Calm down." and r.think
    r = book.parse(book.question(TaskRequest("emotion", "none")), "The character's emotional state is worried.")
    assert r.labels == ("worried",)
