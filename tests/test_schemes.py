import numpy as np
import pytest

from wflwv import schemes
from wflwv.errors import WflwvError
from wflwv.schemes import common_scheme, convert, get_scheme, scheme_for_points


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
    from wflwv.metrics import nme, normaliser, region_nmf

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
