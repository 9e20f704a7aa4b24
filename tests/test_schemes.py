import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import VIDEO_LENGTHS, run_main

from wflwv import schemes
from wflwv.errors import WflwvError
from wflwv.export import verify
from wflwv.data.videoset import VideoSet
from wflwv.metrics import nme, normaliser, padded, region_nmf, score_videos
from wflwv.predictions import MethodInfo, hold_missing, load_prediction_set, write_prediction_set
from wflwv.schemes import common_scheme, convert, get_scheme, scheme_for_points
from wflwv.synth import Preset, generate
from wflwv.synth.face import Expression
from wflwv.synth.scene import Pose, Scene, landmarks, landmarks68
from wflwv.synth.texture import Look

LOOK = Look(skin=(0.9, 0.75, 0.65), hair=(0.1, 0.07, 0.05), lips=(0.8, 0.25, 0.3))


def test_each_shipped_scheme_reads_and_names_points_inside_it():
    assert schemes.scheme_names() == ["ibug68", "mediapipe478", "wflw98"]
    for name in schemes.scheme_names():
        scheme = get_scheme(name)
        assert scheme_for_points(scheme.n_points) is scheme
        named = [*scheme.regions.values(), *scheme.subsets.values(), *(i for pair in scheme.normalisations.values() for i in pair)]
        assert all(0 <= indices.min() and indices.max() < scheme.n_points for indices in named)


@pytest.mark.parametrize("name", ["wflw98", "ibug68"])
def test_regions_partition_the_points(name):
    scheme = get_scheme(name)
    assert sorted(np.concatenate(list(scheme.regions.values()))) == list(range(scheme.n_points))
    assert list(scheme.regions) == ["contour", "brows", "nose", "eyes", "mouth"]


@pytest.mark.parametrize("name", ["wflw98", "ibug68"])
def test_flip_is_an_involution_that_swaps_sides_and_keeps_regions(name):
    """Flipping twice is the identity; the flip maps each region onto itself; on a left-right symmetric
    face (a face averaged with its mirror image) the flip of the mirror is the face again."""
    scheme = get_scheme(name)
    flip = scheme.flip
    assert np.array_equal(flip[flip], np.arange(scheme.n_points))
    for indices in scheme.regions.values():
        assert set(flip[indices]) == set(indices)
    left, right = scheme.normalisations["interocular"]
    assert np.array_equal(flip[left], right)
    eyes = {"wflw98": (range(60, 68), range(68, 76)), "ibug68": (range(36, 42), range(42, 48))}[name]
    assert set(flip[list(eyes[0])]) == set(eyes[1])
    face = np.random.default_rng(0).uniform(0, 100, (scheme.n_points, 2))
    symmetric = (face + schemes.flip_horizontally(face, 100, scheme)) / 2
    assert np.allclose(schemes.flip_horizontally(symmetric, 100, scheme), symmetric)


def test_ibug68_conventions():
    scheme = get_scheme("ibug68")
    assert [indices.tolist() for indices in scheme.normalisations["interocular"]] == [[36], [45]]
    assert [indices.tolist() for indices in scheme.normalisations["interpupil"]] == [list(range(36, 42)), list(range(42, 48))]
    assert scheme.subsets["51"].tolist() == list(range(17, 68))
    assert len(scheme.subsets["49"]) == 49 and not {60, 64} & set(scheme.subsets["49"])
    # the mirrored left eye is the right eye, corner for corner and lid for lid
    assert scheme.flip[36:42].tolist() == [45, 44, 43, 42, 47, 46]


def test_wflw98_map_to_68_is_the_standard_table():
    table = get_scheme("wflw98").maps["ibug68"][:, 0]
    assert table[:17].tolist() == list(range(0, 33, 2))
    assert table[17:27].tolist() == [33, 34, 35, 36, 37, 42, 43, 44, 45, 46]
    assert table[27:48].tolist() == [*range(51, 60), 60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75]
    assert table[48:].tolist() == list(range(76, 96))


def test_maps_commute_with_the_flip():
    """Mapping a mirrored 98-point face gives the mirrored 68-point face: the table keeps left and right."""
    face = np.random.default_rng(1).uniform(0, 100, (98, 2))
    wflw, ibug = get_scheme("wflw98"), get_scheme("ibug68")
    mirrored_then_mapped = convert(schemes.flip_horizontally(face, 100, wflw), "wflw98", "ibug68")
    assert np.allclose(mirrored_then_mapped, schemes.flip_horizontally(convert(face, "wflw98", "ibug68"), 100, ibug))


def test_mediapipe_map_averages_its_pairs_and_keeps_nan():
    points = np.random.default_rng(2).uniform(0, 100, (3, 478, 2))
    points[1, 58] = np.nan
    mapped = convert(points, "mediapipe478", "ibug68")
    assert mapped.shape == (3, 68, 2)
    assert np.allclose(mapped[0, 3], (points[0, 132] + points[0, 58]) / 2)
    assert np.allclose(mapped[0, 36], points[0, 33]) and np.allclose(mapped[0, 45], points[0, 263])
    assert np.isnan(mapped[1, 3:5]).all() and not np.isnan(np.delete(mapped[1], [3, 4], axis=0)).any()


def test_convert_identity_and_refusals():
    points = np.zeros((5, 68, 2))
    assert convert(points, "ibug68", "ibug68") is not None and np.array_equal(convert(points, "ibug68", "ibug68"), points)
    with pytest.raises(WflwvError, match="no map from point scheme ibug68 to wflw98"):
        convert(points, "ibug68", "wflw98")
    with pytest.raises(WflwvError, match=r"shape \(5, 68, 2\), expected \(\.\.\., 98, 2\)"):
        convert(points, "wflw98", "ibug68")
    with pytest.raises(WflwvError, match="unknown point scheme 'dlib5'"):
        get_scheme("dlib5")
    with pytest.raises(WflwvError, match="no point scheme has 5 points"):
        scheme_for_points(5)


def test_common_scheme():
    assert common_scheme(["wflw98"]) == "wflw98"
    assert common_scheme(["wflw98", "wflw98"]) == "wflw98"
    assert common_scheme(["wflw98", "ibug68"]) == "ibug68"
    assert common_scheme(["mediapipe478", "wflw98", "ibug68"]) == "ibug68"
    assert common_scheme(["mediapipe478"]) == "mediapipe478"


def test_point_lists_parse_ranges_steps_and_sums():
    assert schemes.parse_points("3, 0-2, 5-4, 0-6/3, 7+8", "test") == [[3], [0], [1], [2], [5], [4], [0], [3], [6], [7, 8]]
    with pytest.raises(WflwvError, match="cannot read 'x'"):
        schemes.parse_points("1, x", "test")


def test_distance_between_centroids():
    scheme = get_scheme("ibug68")
    face = np.zeros((68, 2))
    face[36:42] = [[0, 0], [1, -1], [2, -1], [3, 0], [2, 1], [1, 1]]
    face[42:48] = face[36:42] + [10, 0]
    face[45] = [14, 0]  # the right eye's outer corner pulled out: it moves the corner distance, and the centre by 1/6
    assert schemes.distance(face, scheme, "interocular") == pytest.approx(14.0)
    assert schemes.distance(face, scheme, "interpupil") == pytest.approx(10 + 1 / 6)


def test_metrics_on_68_points_normalise_by_the_outer_eye_corners_and_use_ibug_regions():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 200, (2, 5, 68, 2))
    pred = truth.copy()
    pred[..., 48:68, 0] += 2.0  # only the mouth is off, by 2 pixels
    corners = np.linalg.norm(truth[..., 36, :] - truth[..., 45, :], axis=-1)
    assert np.allclose(normaliser(truth), corners)
    assert np.allclose(nme(pred, truth), 2.0 * 20 / 68 / corners)
    pred[:, 1::2, 48:68, 0] -= 4.0  # the mouth jumps every frame; nothing else moves
    flicker = region_nmf(pred, truth)
    assert list(flicker) == ["contour", "brows", "nose", "eyes", "mouth"]
    assert (flicker["mouth"] > 0).all() and all((flicker[region] == 0).all() for region in ("contour", "brows", "nose", "eyes"))


SCENES = [  # a frontal face, and a turned, tilted, blinking, talking one
    Scene(look=LOOK, pose=Pose(scale=60, centre=(128, 100))),
    Scene(
        look=LOOK,
        expression=Expression(mouth_open=0.4, smile=0.6, blink=(0.7, 0.0), brow_raise=-0.5, gaze=(0.3, 0.2)),
        pose=Pose(yaw=35, pitch=-10, roll=15, scale=50, centre=(120.0, 110.0)),
    ),
]
LIDS = [37, 38, 40, 41, 43, 44, 46, 47]  # where iBUG's definition is not a WFLW point


@pytest.mark.parametrize("scene", SCENES)
def test_synthetic_98_point_truth_mapped_to_68_lands_on_the_68_point_truth(scene):
    truth98, truth68 = landmarks(scene), landmarks68(scene)
    mapped = convert(truth98, "wflw98", "ibug68")
    same = np.setdiff1d(np.arange(68), LIDS)
    assert np.allclose(mapped[same], truth68[same], atol=1e-9)
    # the lids: WFLW's points at a quarter and three quarters of each lid stand near iBUG's thirds, not on them
    corners = np.linalg.norm(truth68[36] - truth68[45])
    gap = np.linalg.norm(mapped[LIDS] - truth68[LIDS], axis=1) / corners
    assert (gap > 0.005).all() and (gap < 0.06).all()
    # the 68-point inter-ocular normaliser is the distance between WFLW's outer corners, mapped
    assert normaliser(truth68) == pytest.approx(np.linalg.norm(truth98[60] - truth98[72]))
    # a noisy 98-point prediction mapped to 68 scores on 68 points about as it does on 98
    noisy = truth98 + np.random.default_rng(4).normal(0, 0.02 * corners, truth98.shape)
    assert nme(convert(noisy, "wflw98", "ibug68"), truth68) == pytest.approx(nme(noisy, truth98), rel=0.25)


def test_synthetic_68_point_truth_mirrors_with_the_68_flip():
    scene = SCENES[1]
    mirror = replace(scene, expression=scene.expression.mirrored(), pose=replace(scene.pose, yaw=-35, roll=-15, centre=(255 - 120.0, 110.0)))
    assert np.allclose(landmarks68(mirror), schemes.flip_horizontally(landmarks68(scene), 256, get_scheme("ibug68")), atol=1e-9)


def test_bench_scores_a_68_point_set_beside_98_points_on_their_common_scheme_and_says_so(bench_world, tmp_path, capsys):
    """A 98-point video set: the 98-point set scores on 98 points (and, asked, on 68), the 68-point set on 68 points,
    its truth mapped; the same landmarks score the same whichever way they reach 68 points."""
    noisy = load_prediction_set(bench_world.noisy_truth, VIDEO_LENGTHS)
    folder = tmp_path / "noisy68"
    write_prediction_set(folder, {i: convert(p, "wflw98", "ibug68") for i, p in noisy.items()}, MethodInfo("noisy 68", scheme="ibug68"))
    sets = [f"noisy98={bench_world.noisy_truth}", "--predictions", f"noisy68={folder}"]
    result = run_main(capsys, "bench", "--predictions", *sets, "--videos", bench_world.videos, "--filters", "none", "--scheme", "ibug68", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "out" / "video_leaderboard.parquet").set_index("model")
    assert table["scheme"].to_dict() == {"noisy98": "wflw98", "noisy98 @ibug68": "ibug68", "noisy68": "ibug68"}
    assert (table["normalisation"] == "interocular").all()
    assert "| noisy68 | raw | ibug68 | interocular |" in result.stdout
    truth = VideoSet(bench_world.videos)
    mapped = [convert(truth.load_landmarks(i), "wflw98", "ibug68") for i in ("h1", "h2")]
    expected = score_videos(padded([hold_missing(convert(noisy[i], "wflw98", "ibug68")) for i in ("h1", "h2")]), padded(mapped))
    for model in ("noisy68", "noisy98 @ibug68"):
        assert table.loc[model, "nme_hard"] == pytest.approx(100 * expected.nme) and table.loc[model, "nmf_hard"] == pytest.approx(100 * expected.nmf)
    assert table.loc["noisy98", "nme_hard"] != pytest.approx(table.loc["noisy68", "nme_hard"])


def test_bench_refuses_a_set_whose_files_disagree_with_its_declared_scheme_before_any_work(bench_world, tmp_path, capsys):
    folder = shutil.copytree(bench_world.noisy_truth, tmp_path / "set")
    (folder / "method.json").write_text(json.dumps({"name": "n", "scheme": "ibug68"}))
    result = run_main(capsys, "bench", "--model", bench_world.checkpoints[0], "--predictions", f"n={folder}", "--videos", bench_world.videos, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stderr.strip() == f"error: {folder / 'e1.parquet'}: landmarks have 98 points, but method.json declares ibug68, 68"
    assert not (tmp_path / "out" / "cache").exists()


def test_schemes_without_a_common_one_are_refused(monkeypatch):
    lone = replace(get_scheme("ibug68"), name="dlib5", n_points=5, maps={})
    monkeypatch.setitem(schemes._all_schemes(), "dlib5", lone)
    with pytest.raises(WflwvError, match="point schemes dlib5, wflw98 have no common scheme to score on"):
        common_scheme(["wflw98", "dlib5"])


def test_the_synthetic_world_writes_a_68_point_video_set_of_the_same_videos(tmp_path):
    generate(tmp_path, Preset(0, 0, 1, (160, 192), (90, 120), (192, 160), (80, 110), (12, 14)), seed=2, workers=1)
    videos, videos68 = VideoSet(tmp_path / "videos"), VideoSet(tmp_path / "videos68")
    assert videos68.ids() == videos.ids() and videos68.ids("hard") == videos.ids("hard") and len(videos.ids()) == 2
    assert verify(tmp_path / "videos68").problems == []
    same = np.setdiff1d(np.arange(68), LIDS)
    for video_id in videos.ids():
        assert videos68.video_path(video_id).samefile(videos.video_path(video_id))  # a hard link, not a second copy
        mapped = convert(videos.load_landmarks(video_id), "wflw98", "ibug68")
        assert np.allclose(mapped[:, same], videos68.load_landmarks(video_id)[:, same], atol=1e-9)
