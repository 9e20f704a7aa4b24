import json
import shutil

import numpy as np
import pytest
from conftest import VIDEO_LENGTHS, write_prediction_file

from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.predictions import MethodInfo, hold_missing, load_prediction_set, predictions_digest, read_method, write_prediction_set


@pytest.mark.parametrize("n_points", [98, 68])
def test_the_four_formats_hold_the_same_landmarks_with_nan_where_there_are_none(tmp_path, n_points):
    landmarks = np.random.default_rng(0).uniform(0, 100, (5, n_points, 2))
    landmarks[1] = np.nan
    for suffix in (".npy", ".npz", ".parquet", ".csv"):
        folder = tmp_path / suffix[1:]
        write_prediction_file(folder / f"v{suffix}", landmarks)
        loaded = load_prediction_set(folder, {"v": 5})["v"]
        assert np.allclose(loaded, landmarks, equal_nan=True) and np.isnan(loaded[1]).all()


def test_the_bench_writes_a_set_it_reads_back_with_the_same_digest(tmp_path):
    landmarks = {"a": np.ones((3, 98, 2)), "b": np.zeros((4, 98, 2))}
    write_prediction_set(tmp_path, landmarks, MethodInfo("m", "d", {"k": 1}, causal=True))
    loaded = load_prediction_set(tmp_path, {"a": 3, "b": 4})
    assert predictions_digest(loaded) == predictions_digest(landmarks) != predictions_digest({"a": landmarks["a"]})
    assert read_method(tmp_path) == MethodInfo("m", "d", {"k": 1}, True)
    assert read_method(tmp_path / "nothing_here") == MethodInfo("nothing_here")


def test_frames_without_landmarks_hold_the_last_ones_and_the_first_ones_before_them():
    landmarks = np.arange(5, dtype=float)[:, None, None] * np.ones((5, 98, 2))
    landmarks[[0, 2, 3]] = np.nan
    assert hold_missing(landmarks)[:, 0, 0].tolist() == [1, 1, 1, 1, 4]


@pytest.mark.parametrize(
    "change, file, problem",
    [
        (lambda f: (f / "e1.parquet").unlink(), "e1.npy", "no predictions for video 'e1'"),
        (lambda f: write_prediction_file(f / "h2.npz", np.zeros((4, 98, 2))), "h2.npz", "has 5 frames, the predictions have 4"),
        (lambda f: write_prediction_file(f / "h1.npy", np.zeros((7, 67, 2))), "h1.npy", "shape (7, 67, 2), expected (frames, 68 or 98 or 478 points, 2)"),
        (lambda f: write_prediction_file(f / "h2.npz", np.ones((5, 68, 2))), "h2.npz", "68 points, but the set's other files have 98"),
        (lambda f: (f / "method.json").write_text('{"scheme": "ibug68"}'), "h1.npy", "98 points, but method.json declares ibug68, 68"),
        (lambda f: (f / "method.json").write_text('{"scheme": "dlib5"}'), "method.json", "unknown point scheme 'dlib5'"),
        (lambda f: write_prediction_file(f / "h1.npy", np.zeros((7, 98, 2), dtype=int)), "h1.npy", "dtype int64"),
        (lambda f: write_prediction_file(f / "h1.npy", np.full((7, 98, 2), np.nan)), "h1.npy", "no landmarks in any frame"),
        (lambda f: write_prediction_file(f / "h1.npz", np.zeros((7, 98, 2))), "h1.npy", "h1.npy, h1.npz"),
        (lambda f: (f / "e2.csv").write_text("frame,x0,y0\n0,1,2\n"), "e2.csv", "1 points, expected 68 or 98 or 478"),
        (lambda f: (f / "h2.npz").write_bytes(b"PK\x03\x04 not a zip"), "h2.npz", "not a readable .npz file"),
        (lambda f: (f / "method.json").write_text('{"causal": "yes"}'), "method.json", "'causal' must be a bool"),
    ],
)
def test_a_bad_prediction_set_is_refused_naming_the_file(bench_world, tmp_path, change, file, problem):
    folder = shutil.copytree(bench_world.noisy_truth, tmp_path / "set")
    change(folder)
    with pytest.raises(WflwvError) as error:
        load_prediction_set(folder, {i: len(VideoSet(bench_world.videos).load_landmarks(i)) for i in VIDEO_LENGTHS})
        read_method(folder)
    assert error.value.path == str(folder / file) and problem in error.value.problem


def test_method_json_must_be_an_object(tmp_path):
    (tmp_path / "method.json").write_text(json.dumps(["name"]))
    with pytest.raises(WflwvError, match="JSON object"):
        read_method(tmp_path)
