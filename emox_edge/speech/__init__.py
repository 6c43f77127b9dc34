"""Speech recognition: Whisper (CTranslate2) turns the voiced parts of a clip into English words.

    from emox_edge.speech import SpeechOptions, SpeechStage, Transcriber

    stage = SpeechStage.from_bundle(bundle, SpeechOptions(), n_threads=2, device="cpu")  # None: no model
    transcript = stage.transcribe_clip(audio, 16000, vad_segments, live=True, clip_start=0.0, clip_end=4.0)
    print(transcript.text, transcript.language)

Modules: ``options`` (SpeechOptions), ``transcript`` (result records), ``features`` (log-mel),
``tokens`` (Whisper's vocabulary), ``transcriber`` (the model), ``stage`` (per-stream carry-over and
dialogue memory). CTranslate2 is imported when a model is loaded, not with this package.
"""

from emox_edge.speech.options import SpeechOptions
from emox_edge.speech.stage import DialogueMemory, SpeechStage
from emox_edge.speech.transcriber import Transcriber
from emox_edge.speech.transcript import Transcript, TranscriptSegment

__all__ = ["DialogueMemory", "SpeechOptions", "SpeechStage", "Transcriber", "Transcript", "TranscriptSegment"]
