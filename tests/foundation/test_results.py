import json

import numpy as np

from emox_edge.results import ClipResult, Face, TaskResult


def _result():
    left = Face(box=(10.0, 10.0, 40.0, 40.0), score=0.9)
    right = Face(box=(100.0, 10.0, 130.0, 40.0), score=0.9)
    return ClipResult(
        source="test", start=0.0, end=2.0, bundle="lite:t",
        tasks={"emotion": TaskResult(task="emotion", text="happy", label="happy")},
        faces=(right,), frame_faces=((0.0, (left,)), (1.5, (right,))),
    )


def test_faces_at_picks_nearest_analysed_frame():
    result = _result()
    assert result.faces_at(0.2)[0].box[0] == 10.0
    assert result.faces_at(1.0)[0].box[0] == 100.0
    assert result.faces_at(None) == result.faces


def test_plot_draws_the_box_of_the_frame_time_not_the_clip_end():
    frame = np.zeros((120, 160, 3), np.uint8)
    early = _result().plot(frame, t=0.0)
    late = _result().plot(frame, t=1.6)
    # a box edge pixel: left box at x=10, right box at x=100 (rows 15..35 are clear of the label text)
    assert early[15:35, 10].any() and not early[15:35, 100].any()
    assert late[15:35, 100].any() and not late[15:35, 10].any()
    assert not frame.any()  # plot draws on a copy


def test_to_dict_carries_frame_faces_as_json():
    data = json.loads(json.dumps(_result().to_dict()))
    assert [item["time"] for item in data["frame_faces"]] == [0.0, 1.5]
    assert data["frame_faces"][1]["faces"][0]["box"] == [100.0, 10.0, 130.0, 40.0]
