"""The language core: a GGUF model through llama.cpp, with encoder embeddings injected as prompt rows.

    from emox_edge.llm import LanguageCore, label_grammar

    with LanguageCore.from_file("model.gguf", n_ctx=4096) as core:
        rows = np.zeros((32, core.embedding_width), np.float32)      # e.g. audio Q-Former output
        result = core.generate(["###Human: <Audio>", rows, "</Audio> ... ###Assistant: "],
                               max_new_tokens=64, stop=["###"])
        print(result.text, result.stop_reason)
"""

from emox_edge.llm.batching import BatchRequest, Scores
from emox_edge.llm.core import LanguageCore
from emox_edge.llm.generation import STOP_REASONS, GenerationResult, Stream
from emox_edge.llm.grammar import gbnf_literal, label_grammar
from emox_edge.llm.segments import ACCEPTED_FORMS, Literal, UntrustedText

__all__ = [
    "ACCEPTED_FORMS",
    "BatchRequest",
    "GenerationResult",
    "LanguageCore",
    "Literal",
    "STOP_REASONS",
    "Scores",
    "Stream",
    "UntrustedText",
    "gbnf_literal",
    "label_grammar",
]
