"""Intent from sentence embeddings: WordPiece tokenizer, MiniLM ONNX conversion, prototype classifier.

Tiny random BERTs built here cover the converter and the classifier; the real all-MiniLM-L6-v2 is
used only when its pinned files are already in the cache (then the lite bundle carries it), and its
torch parity check only when torch and transformers are installed (the "convert" extra).
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from converters.lite import minilm_onnx
from converters.lite.minilm_onnx import BertShape, build_minilm_onnx, check_minilm_parity, read_safetensors
from emox_edge.errors import BadInputError, BundleError, ParityError
from emox_edge.lite.intent_model import RULES, IntentClassifier, SentenceEncoder, load_prototypes
from emox_edge.lite.tables import intent_labels
from emox_edge.lite.wordpiece import WordPieceTokenizer, basic_tokenize

WORDS = ("hello", "there", "nice", "to", "meet", "you", "thank", "so", "much", "for", "your", "help", "stop",
         "don", "'", "t", "touch", "that", "see", "tomorrow", "bye", "un", "##believ", "##able", "ca", "##fe")
TINY = BertShape(layers=2, hidden=16, heads=4, intermediate=32, eps=1e-12, max_positions=64)
HAS_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


def _tiny_weights(vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, f = TINY.hidden, TINY.intermediate

    def r(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": r(vocab_size, h), "embeddings.position_embeddings.weight": r(64, h),
         "embeddings.token_type_embeddings.weight": r(2, h),
         "embeddings.LayerNorm.weight": 1 + r(h), "embeddings.LayerNorm.bias": r(h)}
    for i in range(TINY.layers):
        for name, (n_out, n_in) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                                    "attention.self.value": (h, h), "attention.output.dense": (h, h),
                                    "intermediate.dense": (f, h), "output.dense": (h, f)}.items():
            w[f"encoder.layer.{i}.{name}.weight"], w[f"encoder.layer.{i}.{name}.bias"] = r(n_out, n_in), r(n_out)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"encoder.layer.{i}.{ln}.weight"], w[f"encoder.layer.{i}.{ln}.bias"] = 1 + r(h), r(h)
    return w


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random BERT sentence encoder: (folder, onnx path, vocab path, weights)."""
    import onnx

    folder = tmp_path_factory.mktemp("tiny-minilm")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?") + WORDS) + "\n")
    weights = _tiny_weights(9 + len(WORDS))
    model = folder / "tiny.onnx"
    onnx.save(build_minilm_onnx(weights, TINY), str(model))
    return folder, model, vocab, weights


@pytest.fixture()
def protos_file(tmp_path):
    path = tmp_path / "protos.json"
    path.write_text(json.dumps({"prototypes": {"greet": ["hello there", "nice to meet you"],
                                               "thank": ["thank you so much", "thank you for your help"],
                                               "prevent": ["stop, don't touch that!"],
                                               "leave": ["bye, see you tomorrow"]}}))
    return path


# --- tokenizer ---------------------------------------------------------------------------------------

def test_basic_tokenization_lowercases_strips_accents_and_splits_punctuation():
    assert basic_tokenize("Hello,  CAFÉ!\tdon't\u200b") == ["hello", ",", "cafe", "!", "don", "'", "t"]
    assert basic_tokenize("日本 ok") == ["日", "本", "ok"]
    assert basic_tokenize(" \n ") == []


def test_wordpiece_greedy_longest_match_unk_and_truncation(tiny):
    _, _, vocab, _ = tiny
    tok = WordPieceTokenizer.from_file(vocab, max_length=6)
    ids = tok.vocab
    assert tok.tokenize_ids("Unbelievable café") == [ids["un"], ids["##believ"], ids["##able"], ids["ca"], ids["##fe"]]
    assert tok.tokenize_ids("xylophone") == [tok.unk_id]
    assert tok.tokenize_ids("a" * 101) == [tok.unk_id]
    encoded = tok.encode("hello there nice to meet you")
    assert len(encoded) == 6 and encoded[0] == tok.cls_id and encoded[-1] == tok.sep_id
    assert tok.encode("") == [tok.cls_id, tok.sep_id]
    with pytest.raises(TypeError):
        tok.encode(b"bytes")


def test_wordpiece_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        WordPieceTokenizer.from_file(tmp_path / "nope.txt")
    bad = tmp_path / "vocab.txt"
    bad.write_text("hello\nthere\n")
    with pytest.raises(BundleError, match=r"vocab\.txt.*special tokens"):
        WordPieceTokenizer.from_file(bad)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError, match="vocab.txt"):
        WordPieceTokenizer.from_file(bad)


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="transformers not installed (the 'convert' extra): no reference tokenizer")
def test_wordpiece_matches_transformers_bert_tokenizer(tiny):
    from transformers import BertTokenizer

    _, _, vocab, _ = tiny
    ref = BertTokenizer(str(vocab), do_lower_case=True)
    ours = WordPieceTokenizer.from_file(vocab)
    for text in ("Hello there, nice to meet you!", "Unbelievable CAFÉ... don't touch that?", "bye\tbye\n", "日本 x"):
        assert ours.encode(text) == ref(text)["input_ids"], text


# --- converter ---------------------------------------------------------------------------------------

def test_safetensors_reader_round_trips_and_rejects_truncation(tmp_path, tiny):
    _, _, _, weights = tiny
    path = _write_safetensors(tmp_path / "w.safetensors", weights)
    back = read_safetensors(path)
    assert set(back) == set(weights)
    np.testing.assert_array_equal(back["encoder.layer.1.output.dense.weight"], weights["encoder.layer.1.output.dense.weight"])
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"w\.safetensors.*truncated"):
        read_safetensors(path)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="w.safetensors"):
        read_safetensors(path)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        read_safetensors(tmp_path / "missing.safetensors")


def test_bert_config_is_checked(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "bert", "hidden_act": "gelu", "num_hidden_layers": 2, "hidden_size": 16,
                               "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64}))
    assert BertShape.from_config(cfg) == TINY
    cfg.write_text(json.dumps({"model_type": "roberta", "num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 4,
                               "intermediate_size": 32, "max_position_embeddings": 64}))
    with pytest.raises(BundleError, match="config.json.*bert"):
        BertShape.from_config(cfg)
    cfg.write_text("{")
    with pytest.raises(BundleError, match="config.json"):
        BertShape.from_config(cfg)


def test_onnx_graph_matches_the_numpy_reference_with_padding(tiny):
    _, model, vocab, weights = tiny
    parity = check_minilm_parity(model, weights, TINY, vocab)
    assert parity.min_cosine > 0.99999 and parity.sentences == len(minilm_onnx.PARITY_SENTENCES)
    # a padded row embeds like the same sentence alone
    enc = SentenceEncoder.from_files(model, vocab)
    both = enc.embed(["hello", "thank you so much for your help"])
    alone = enc.embed(["hello"])
    np.testing.assert_allclose(both[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)


def test_parity_gate_refuses_a_wrong_graph(tiny, tmp_path):
    _, model, vocab, weights = tiny
    other = _tiny_weights(len(weights["embeddings.word_embeddings.weight"]), seed=1)
    with pytest.raises(ParityError, match="tiny.onnx"):
        check_minilm_parity(model, other, TINY, vocab)


def test_missing_or_misshapen_tensor_is_named(tiny):
    _, _, _, weights = tiny
    broken = {k: v for k, v in weights.items() if k != "encoder.layer.1.attention.self.key.weight"}
    with pytest.raises(BundleError, match="encoder.layer.1.attention.self.key.weight"):
        build_minilm_onnx(broken, TINY)
    broken = dict(weights, **{"embeddings.LayerNorm.bias": np.zeros(3, np.float32)})
    with pytest.raises(BundleError, match=r"embeddings.LayerNorm.bias.*\(3,\)"):
        build_minilm_onnx(broken, TINY)


# --- classifier --------------------------------------------------------------------------------------

def test_classify_returns_a_label_and_every_score(tiny, protos_file):
    _, model, vocab, _ = tiny
    with IntentClassifier.from_files(model, vocab, protos_file, rule="max") as clf:
        assert clf.labels == ("greet", "thank", "prevent", "leave")
        for text, want in (("hello there", "greet"), ("stop, don't touch that!", "prevent"),
                           ("bye, see you tomorrow", "leave")):
            label, scores = clf.classify(text)  # an utterance of the file is its own nearest prototype
            assert label == want and scores[want] == pytest.approx(1.0, abs=1e-4)
            assert list(scores) == list(clf.labels)
        emb = clf.encoder.embed(["thank you", "see you"])
        for rule in RULES:
            assert clf.scores_of(emb, rule).shape == (2, 4)


def test_classifier_misuse(tiny, protos_file):
    _, model, vocab, _ = tiny
    with pytest.raises(BadInputError, match="unknown intent rule 'vote'.*max, top2"):
        IntentClassifier.from_files(model, vocab, protos_file, rule="vote")
    clf = IntentClassifier.from_files(model, vocab, protos_file)
    with pytest.raises(BadInputError, match="empty"):
        clf.classify("   ")
    with pytest.raises(TypeError):
        clf.classify(None)
    with pytest.raises(TypeError, match="sequence of strings"):
        clf.encoder.embed("hello")
    clf.close()
    with pytest.raises(RuntimeError, match="closed"):
        clf.classify("hello")


def test_missing_and_corrupt_files_are_named(tiny, protos_file, tmp_path):
    _, model, vocab, _ = tiny
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        IntentClassifier.from_files(tmp_path / "absent.onnx", vocab, protos_file)
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        IntentClassifier.from_files(model, tmp_path / "absent.txt", protos_file)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        IntentClassifier.from_files(model, vocab, tmp_path / "absent.json")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(BundleError, match="garbage.onnx"):
        IntentClassifier.from_files(garbage, vocab, protos_file)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(BundleError, match="bad.json"):
        load_prototypes(bad)
    bad.write_text(json.dumps({"prototypes": {"greet": ["hi"], "thank": []}}))
    with pytest.raises(BundleError, match=r"bad\.json.*thank"):
        load_prototypes(bad)
    with pytest.raises(BundleError, match=r"protos\.json.*missing \['joke'\]"):
        load_prototypes(protos_file, labels=("greet", "thank", "prevent", "leave", "joke"))


def test_packaged_prototypes_cover_mintrec():
    labels = intent_labels("mintrec")[0]
    protos = load_prototypes(labels=labels)
    assert tuple(protos) == labels
    assert all(6 <= len(utterances) <= 10 for utterances in protos.values())
    assert len({u for us in protos.values() for u in us}) == sum(len(us) for us in protos.values())


# --- the real all-MiniLM-L6-v2 -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_bundle(request):
    """The lite bundle, when the pinned MiniLM files are already cached (no download in this test file)."""
    from converters.lite import sources
    from converters.lite.build import INTENT_SOURCES

    if not all(sources.is_cached(sources.SOURCES[n], check_sha256=False) for n in INTENT_SOURCES):
        pytest.skip("all-MiniLM-L6-v2 is not in the source cache (run `emox-edge bundle build lite` once)")
    return request.getfixturevalue("lite_bundle")


@pytest.fixture(scope="module")
def real_classifier(minilm_bundle):
    clf = IntentClassifier.from_bundle(minilm_bundle, labels=intent_labels("mintrec")[0], n_threads=1)
    yield clf
    clf.close()


@pytest.mark.parametrize("text, label", [("Thank you so much for your help", "thank"),
                                         ("Hello there, nice to meet you", "greet"),
                                         ("Sorry, that was my fault", "apologise"),
                                         ("Okay, I have to go now, see you", "leave")])
def test_real_minilm_classifies_plain_intents(real_classifier, text, label):
    got, scores = real_classifier.classify(text)
    assert got == label, scores
    assert set(scores) == set(intent_labels("mintrec")[0])


def test_bundle_entry_describes_the_encoder(minilm_bundle):
    entry = minilm_bundle.section("graphs")["intent_encoder"]
    assert entry["rule"] in RULES and entry["parity"]["min_cosine"] >= 0.9999
    assert [i["name"] for i in entry["inputs"]] == ["input_ids", "attention_mask"]
    assert entry["outputs"] == [{"name": "embedding", "shape": ["batch", 384], "dtype": "float32"}]


@pytest.mark.skipif(not HAS_TORCH, reason="torch/transformers not installed (the 'convert' extra): no reference model")
def test_real_minilm_matches_transformers(minilm_bundle, tmp_path):
    import torch
    from transformers import BertModel

    from converters.lite import sources

    for name, filename in (("minilm-l6-weights", "model.safetensors"), ("minilm-l6-config", "config.json")):
        (tmp_path / filename).symlink_to(sources.cached_path(sources.SOURCES[name]))
    model = BertModel.from_pretrained(str(tmp_path), add_pooling_layer=False).eval()
    entry = minilm_bundle.section("graphs")["intent_encoder"]
    enc = SentenceEncoder.from_files(minilm_bundle.path(entry["file"]), minilm_bundle.path(entry["vocab"]))
    texts = ["Thank you so much for your help", "Hello there, nice to meet you", "Don't touch that!", "ok"]
    rows = [enc.tokenizer.encode(t) for t in texts]
    ids, mask = minilm_onnx.batch_ids(rows)
    with torch.no_grad():
        hidden = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    m = torch.from_numpy(mask)[..., None].float()
    want = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1).numpy()
    got = enc.embed(texts)
    assert (got * want).sum(1).min() >= 0.999
