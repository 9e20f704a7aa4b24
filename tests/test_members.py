"""Fair labels: label keeps each member's points, bench scores a member against the labels without it and reports the labels' shift."""

import shutil

import numpy as np
import pandas as pd

from wflwv import io
from wflwv.bench import BenchSettings, run_bench
from wflwv.data.videoset import VideoSet
from wflwv.members import leave_one_out, load_member_points, member_names
from wflwv.metrics import padded, score_videos


def test_the_labels_are_the_mean_of_the_members_points(labelled_build):
    videos = VideoSet(labelled_build)
    points = load_member_points(labelled_build, videos.ids())
    assert sorted(points) == ["m0", "m1"]
    for video_id in videos.ids():
        mean = (points["m0"][video_id] + points["m1"][video_id]) / 2
        np.testing.assert_allclose(videos.load_landmarks(video_id), mean, atol=0.02)  # soft-argmax of the mean heatmap: float rounding
        assert np.abs(points["m0"][video_id] - points["m1"][video_id]).max() > 0.5  # the members differ, so the test can tell them apart
        np.testing.assert_array_equal(leave_one_out(points, "m0")[video_id], points["m1"][video_id])


def test_a_member_is_scored_against_the_labels_without_it(labelled_build, tmp_path):
    videos = VideoSet(labelled_build)
    ids = videos.ids()
    points = load_member_points(labelled_build, ids)
    sets = {}
    for name in ("m0", "m1"):
        for video_id in ids:
            io.save_npy(tmp_path / name / f"{video_id}.npy", points[name][video_id])
        sets[name] = tmp_path / name
    for video_id in ids:  # a method outside the ensemble: the labels themselves, shifted by one pixel
        io.save_npy(tmp_path / "outsider" / f"{video_id}.npy", videos.load_landmarks(video_id) + 1.0)
    sets["outsider"] = tmp_path / "outsider"
    board = run_bench([], tmp_path / "bench", videos=labelled_build, predictions=sets, settings=BenchSettings(filters=("ema",), resamples=50))["videos"]
    raw = board.table[board.table["method"] == "raw"].set_index("model")
    truth = padded([videos.load_landmarks(i) for i in ids])

    def nme(predicted, against):
        return 100 * score_videos(padded(predicted), against if isinstance(against, np.ndarray) else padded(against)).nme

    assert raw.loc["m0", "labels"] == "without m0" and raw.loc["outsider", "labels"] == "ensemble"
    assert np.isclose(raw.loc["m0", "nme_all"], nme([points["m0"][i] for i in ids], [points["m1"][i] for i in ids]), rtol=1e-6)
    assert raw.loc["m0", "nme_all"] > 1.5 * nme([points["m0"][i] for i in ids], truth)  # scored on its own labels it would look far better
    assert np.isclose(raw.loc["outsider", "nme_all"], nme([videos.load_landmarks(i) + 1.0 for i in ids], truth), rtol=1e-6)
    shift = np.mean([nme([points[other][i] for i in ids], truth) for other in ("m1", "m0")])
    assert np.allclose(board.table["label_shift_all"], shift, rtol=1e-5)
    filtered = board.table[(board.table["model"] == "m1") & (board.table["curve"] == "ema")]
    assert (filtered["labels"] == "without m1").all()  # a member's filtered runs come from its own points too
    assert "| scored against | NME all | label shift all |" in board.markdown
    assert {"labels", "label_shift_all"} <= set(pd.read_csv(tmp_path / "bench" / "video_leaderboard.csv").columns)


def test_a_member_of_an_earlier_ensemble_is_not_one_of_the_labels(labelled_build, tmp_path):
    build = tmp_path / "build"
    shutil.copytree(labelled_build, build)
    shutil.copytree(build / "members" / "m1", build / "members" / "dropped")  # left by an earlier `wflwv label` with another ensemble
    assert member_names(build) == ["m0", "m1"] and sorted(load_member_points(build, VideoSet(build).ids())) == ["m0", "m1"]
