"""Fixed texts for the language-core parity check and the tokenizer check (written for emox-edge).

Changing any of them changes every number in ``llm-report.json``: keep them fixed, and record a
change in docs/llm-converter.md.
"""

from __future__ import annotations

_PREFIX = ("###Human: The audio and video merged info is: <Multi></Multi>. The audio content is as follows: "
           "<Audio></Audio>. The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. Now, please "
           "answer my question based on all the provided information. {question} ###Assistant: ")

# Prompts whose next-token distributions are compared position by position (position 0 excluded).
PARITY_PROMPTS: tuple[str, ...] = (
    _PREFIX.format(subtitle="I told you I would be here on time, and I was.",
                   question="[Recogn_OV] Please recognize all possible emotional states of the character."),
    _PREFIX.format(subtitle="Well, that is the best news I have heard all year!",
                   question="[Intent]recognize speaker's intention from the provided candidate labels: "
                            "complain, praise, apologise, thank, joke, inform."),
    "The character's emotional state is {surprised, happy, relieved}.",
    "She lowered her voice, looked away from the camera and said nothing for a long while; "
    "her hands were shaking slightly.",
    "def mean(values):\n    return sum(values) / len(values)  # 3.14159, 2026-11-22\n",
)

# Perplexity is measured on this text (predicting every token from the second position on).
PERPLEXITY_TEXT = (
    "Recognising emotion from a short video clip is harder than it first appears. A face can smile "
    "while the voice trembles, and the words a person chooses may say the opposite of what their "
    "posture reveals. People who study affect therefore look at several signals together. The face "
    "gives quick, visible cues: raised eyebrows, a tightened jaw, the corners of the mouth. The voice "
    "carries pitch, loudness and the rhythm of speech, which change when someone is nervous, tired or "
    "excited. The transcript adds meaning, irony and context. None of these channels is reliable on "
    "its own. A loud voice may signal anger in one scene and joy in the next; a neutral face may hide "
    "sadness. When the signals agree, the judgement is easy. When they disagree, an observer has to "
    "weigh them, and the weighing depends on the situation, the culture and the person. A system that "
    "runs on a small device has to make the same judgement with limited memory and time. It cannot "
    "afford to process every frame at full resolution, so it samples a few frames, a few seconds of "
    "audio and the words that were spoken, and it summarises each of them as a short list of numbers. "
    "A language model then reads those numbers alongside the text of a question and writes its answer "
    "one word at a time. If the model is compressed carelessly, small numerical errors add up, and the "
    "answer drifts: a hesitant smile becomes plain happiness, or a tired voice becomes sadness. "
    "Measuring that drift before shipping the model is the only way to know whether the compression "
    "was worth it."
)

# Strings that llama.cpp must split exactly like the Hugging Face tokenizer (special tokens are
# parsed only in SPECIAL_PROBES, and only those present in the vocabulary are used).
TOKENIZER_PROBES: tuple[str, ...] = (
    "###Human: The audio content is as follows: <Audio></Audio>. ###Assistant: ",
    "###", " ###", "##", "#", "# ## ### ####",
    "The character's emotional state is {angry, worried}.",
    "Please provide your judgment as a \ufb02oating-point number.",
    "[Inference]Evaluate all available clues\u2014visual, auditory, and physiological.",
    "You are an empathetic listener\uff0cyour goal is to understand the user\u2019s emotions.",
    "\u4eca\u5929\u6211\u5f88\u9ad8\u5174\uff0c\u56e0\u4e3a\u8003\u8bd5\u901a\u8fc7\u4e86\u3002",
    "  leading spaces, tabs\tand\nnew\n\nlines   ",
    "Numbers 1234567 3.14159 -0.5e-3 and 2026-11-22T08:15:00Z",
    "caf\u00e9 na\u00efve \u00fcber \u0436\u0438\u0437\u043d\u044c \U0001f600\U0001f622",
    "I'M NOT shouting!!! ...really?",
    "<Multi>x</Multi><Video>y</Video><Subtitle>z</Subtitle>",
)

SPECIAL_PROBES: tuple[str, ...] = (
    "<|im_start|>user\nHow do I feel?<|im_end|>\n<|im_start|>assistant\n",
    "final answer<|endoftext|>",
)
