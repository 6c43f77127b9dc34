"""The small English corpus the tiny Qwen2 tokenizer is trained on (offline, deterministic).

It holds the Nano-EmoX prompt text (spec §7.1, §8), the task label sets and common emotion words,
so the prompts of the real tasks tokenize compactly with the tiny model, plus plain prose so
ordinary text does too.
"""

from __future__ import annotations

NANO_EMOX_TEMPLATE = (
    "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. The audio content is as "
    "follows: <Audio><AudioHere></Audio>. Meanwhile, We uniformly extract facial informations from video: "
    "<Video><FaceHere></Video>. Meanwhile, we uniformly sample raw frames from the video: "
    "<Video><FrameHere></Video>. The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. Now, please "
    "answer my question based on all the provided information. {user_message} ###Assistant: "
)

QUESTIONS = (
    "[Recogn_OV] Please recognize all possible emotional states of the character.",
    "[Recogn_OV] Can you identify every emotional state the character could be displaying?",
    "[Recogn_OV] Recognize all the possible emotional states the character might be feeling in this context.",
    "[Recogn_OV] Identify all possible emotions the character may be experiencing.",
    "[Recogn_OV] What are the various emotional states the character could potentially be in?",
    "[Recognition] Please recognize the character's most likely emotional state.",
    "[Recognition] Please select the label that can best describe the person's emotional state from the "
    "provided candidate labels: neutral, angry, happy, sad, worried, surprise.",
    "Please select the most likely sentiment label that can best describe the person's emotional state: "
    "positive, negative, neutral.",
    "[Intent]recognize speaker's intention from the provided candidate labels: complain, praise, apologise, "
    "thank, criticize, agree, taunt, flaunt, joke, oppose, comfort, care, inform, advise, arrange, introduce, "
    "leave, prevent, greet, ask for help.",
    "[Inference]From the combined evidence of speech, tone, and visual expression, construct a detailed "
    "summary of the subject's emotional journey and final inferred state.",
    "[Interaction] You are an empathetic listener, your goal is to understand the user's emotions and "
    "intentions, and respond or comfort them with appropriate language that helps them feel understood.",
)

ANSWERS = (
    "The character's emotional state is happy, excited.",
    "The character's emotional state is sad, disappointed, lonely.",
    "The character's emotional state is angry, frustrated.",
    "The character's emotional state is neutral.",
    "The character's sentiment state is positive.",
    "The character's sentiment state is negative.",
    "The valence score is 1.25.",
    "The emotion of the speaker is worried.",
    "Arrange###",
    "Complain###",
)

LABEL_SETS = (
    ("neutral", "angry", "happy", "sad", "worried", "surprise"),
    ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"),
    ("happy", "sad", "neutral", "anger"),
    ("positive", "negative", "neutral"),
    ("acknowledge", "advise", "agree", "apologise", "arrange", "ask for help", "asking for opinions", "care",
     "comfort", "complain", "confirm", "criticize", "doubt", "emphasize", "explain", "flaunt", "greet",
     "inform", "introduce", "invite", "joke", "leave", "oppose", "plan", "praise", "prevent", "refuse",
     "taunt", "thank", "warn"),
)

EMOTION_WORDS = (
    "happy happiness joy joyful glad cheerful delighted content calm relaxed relieved grateful proud hopeful "
    "excited enthusiastic amused playful loving affectionate confident satisfied peaceful surprised surprise "
    "astonished amazed shocked curious interested sad sadness unhappy sorrow grief lonely disappointed "
    "depressed hurt miserable regretful guilty ashamed embarrassed angry anger annoyed irritated frustrated "
    "furious resentful hostile jealous fear fearful afraid scared anxious worried nervous tense panicked "
    "terrified disgust disgusted contempt bored tired confused doubtful helpless neutral serious"
)

PROSE = (
    "She smiled when her friend walked into the room, and her voice was bright and warm.",
    "He spoke slowly, looked at the floor, and his shoulders dropped as he told them the news.",
    "The man raised his voice and slammed the door, clearly upset about the long delay.",
    "They laughed together at the joke, and the whole table seemed relaxed and happy.",
    "Her hands were shaking and she kept glancing at the door, as if she expected bad news.",
    "The child jumped up and down, shouting that this was the best day of the year.",
    "After the meeting he sat alone in silence, staring out of the window for a long time.",
    "I am so sorry, I did not mean to hurt you. Can we talk about it tomorrow?",
    "Thank you for helping me with the move; I could not have done it without you.",
    "What time does the train leave? We need to be at the station before nine o'clock.",
    "The weather was cold and grey, but the small cafe on the corner was full of light.",
    "Please answer the question in one short sentence, and do not repeat the question.",
    "The audio shows a trembling voice with a low pitch, and the face shows raised inner brows.",
    "In the video frames the speaker frowns, crosses her arms, and turns away from the camera.",
    "Numbers like 0 1 2 3 4 5 6 7 8 9 10 25 100 2024 and 3.14 appear in ordinary text too.",
    "Punctuation: commas, periods. Questions? Exclamations! Quotes \"like this\" and 'this'; (brackets) [too].",
    "Line one\nLine two\n\nA new paragraph starts here, after a blank line.",
    "Tabs\tand  double  spaces   should still tokenize without errors.",
)


def corpus_lines(repeat: int = 3) -> list[str]:
    """The training corpus as lines; prompt text repeated so its words become whole tokens."""
    lines: list[str] = []
    for _ in range(repeat):
        lines.append(NANO_EMOX_TEMPLATE.format(subtitle="I can't believe you did that!", user_message=QUESTIONS[0]))
        lines.extend(QUESTIONS)
        lines.extend(ANSWERS)
        lines.extend(", ".join(labels) for labels in LABEL_SETS)
        lines.append(EMOTION_WORDS)
    lines.extend(PROSE)
    return lines
