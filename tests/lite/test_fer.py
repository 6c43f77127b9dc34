"""mini-Xception: hdf5 -> ONNX by our own code, parity with the numpy reference, int8, astronaut = happy."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from emox_edge.lite.expression import ExpressionModel, crop_face
from converters.lite.fer_onnx import (
    FER_CLASSES,
    ParityError,
    build_fer_onnx,
    check_fer_parity,
    quantize_fer,
    save_fer_onnx,
)
from converters.lite.fer_reference import forward
from converters.lite.keras_h5 import read_keras_h5, same_padding


@pytest.fixture(scope="module")
def fer_graphs(cached_sources, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fer")
    fp32 = save_fer_onnx(cached_sources["fer-mini-xception"], folder / "fer.onnx")
    int8 = quantize_fer(fp32, folder / "fer.int8.onnx")
    return cached_sources["fer-mini-xception"], fp32, int8


@pytest.fixture(scope="module")
def lfw_faces64(lfw):
    faces, _ = lfw
    return np.stack([cv2.resize(f.astype(np.float32), (64, 64), interpolation=cv2.INTER_CUBIC) for f in faces]) * 2 - 1


def test_keras_graph_is_read_without_tensorflow(cached_sources):
    layers = read_keras_h5(cached_sources["fer-mini-xception"])
    kinds = {layer.kind for layer in layers}
    assert {"Conv2D", "SeparableConv2D", "BatchNormalization", "MaxPooling2D", "Add",
            "GlobalAveragePooling2D", "Activation"} <= kinds
    assert layers[-1].config["activation"] == "softmax"
    assert layers[1].weights["kernel"].shape == (3, 3, 1, 8)


def test_same_padding_matches_tensorflow():
    assert same_padding(64, 3, 1) == (64, 1, 1)
    assert same_padding(60, 3, 2) == (30, 0, 1)  # the extra row goes after, as in TensorFlow
    assert same_padding(15, 3, 2) == (8, 1, 1)
    assert same_padding(15, 1, 2) == (8, 0, 0)


def test_fp32_and_int8_agree_with_the_numpy_reference(fer_graphs, lfw_faces64):
    h5, fp32, int8 = fer_graphs
    parity = check_fer_parity(h5, fp32, int8, lfw_faces64)
    assert parity.n_inputs == 100
    assert parity.fp32_max_abs < 1e-4 and parity.fp32_top1_agreement == 1.0
    assert parity.int8_top1_agreement >= 0.9
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_parity_check_catches_a_wrong_graph(fer_graphs, lfw_faces64, tmp_path):
    h5, fp32, int8 = fer_graphs
    model = onnx.load(str(fp32))
    for init in model.graph.initializer:
        if init.name == "conv2d_7.weight":  # the classifier: swap two classes' filters
            w = numpy_helper.to_array(init).copy()
            w[[3, 6]] = w[[6, 3]]
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ParityError, match="differs from the numpy reference"):
        check_fer_parity(h5, broken, int8, lfw_faces64)


def test_astronaut_is_happy_with_a_face_box(lite_bundle, astronaut):
    from emox_edge.faces import FaceDetector, FaceDetectorOptions

    graphs = lite_bundle.section("graphs")
    with FaceDetector(FaceDetectorOptions(model_path=lite_bundle.path(graphs["face_detector"]["file"]))) as det:
        faces = det.detect(astronaut)
    assert len(faces) == 1
    for key in ("fp32", "file"):  # fp32 and int8 graphs
        annotated = ExpressionModel(lite_bundle.path(graphs["expression"][key])).annotate(astronaut, faces)
        expression = annotated[0].expression
        assert max(expression, key=expression.get) == "happy", (key, expression)
        assert expression["happy"] > 0.9
        assert annotated[0].box == faces[0].box


def test_reference_forward_runs_the_keras_layers(cached_sources, lfw_faces64):
    probs = forward(read_keras_h5(cached_sources["fer-mini-xception"]), lfw_faces64[:4, ..., None])
    assert probs.shape == (4, len(FER_CLASSES))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def _tiny_h5(path, layer_class: str, layer_config: dict):
    config = {"class_name": "Model", "config": {"layers": [
        {"class_name": "InputLayer", "name": "in", "config": {"batch_input_shape": [None, 8, 8, 1]}, "inbound_nodes": []},
        {"class_name": layer_class, "name": "l1", "config": layer_config, "inbound_nodes": [[["in", 0, 0, {}]]]},
    ]}}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config).encode()
        handle.create_group("model_weights")
    return path


def test_unmapped_layers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Keras Dense is not mapped"):
        build_fer_onnx(_tiny_h5(tmp_path / "dense.h5", "Dense", {"units": 3}))
    with pytest.raises(ValueError, match="activation 'elu' not supported"):
        build_fer_onnx(_tiny_h5(tmp_path / "elu.h5", "Activation", {"activation": "elu"}))


def test_reader_misuse(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        read_keras_h5(tmp_path / "nope.hdf5")
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="no 'model_config'"):
        read_keras_h5(tmp_path / "plain.h5")


def test_crop_and_predict_misuse(lite_bundle):
    model = ExpressionModel(lite_bundle.path(lite_bundle.section("graphs")["expression"]["fp32"]))
    with pytest.raises(ValueError, match=r"\[N, 64, 64\]"):
        model.predict_crops(np.zeros((2, 32, 32), np.float32))
    assert model.predict_crops(np.zeros((0, 64, 64), np.float32)).shape == (0, 7)
    with pytest.raises(ValueError, match="empty"):
        crop_face(np.zeros((100, 100, 3), np.uint8), (200, 200, 300, 300))
