import numpy as np
import pytest

from wflwv.errors import WflwvError
from wflwv.filters import EMA
from wflwv.metrics import auc, ced, failure_rate, memory, nme, nmf, normaliser, score_images, score_videos

NAN_FRAME = np.full((98, 2), np.nan)


def face(width: float = 80.0, height: float = 100.0, origin: tuple[float, float] = (10.0, 20.0), seed: int = 0) -> np.ndarray:
    """A (98, 2) face whose landmark box is exactly width x height at `origin`, outer eye corners width/2 apart.

    Coordinates are multiples of 1/8, so sums and differences of them below are exact in floating point.
    """
    unit = np.random.default_rng(seed).uniform(0.1, 0.9, size=(98, 2))
    unit[0], unit[32] = (0.0, 0.0), (1.0, 1.0)
    unit[60], unit[72] = (0.25, 0.3), (0.75, 0.3)
    return np.round((unit * (width, height) + origin) * 8) / 8


def moving_face(frames: int) -> np.ndarray:
    """A face translating by (2.5, -1.25) pixels a frame: its box stays 80 x 100."""
    return face() + np.arange(frames)[:, None, None] * np.array([2.5, -1.25])


def alternating(frames: int, offset: tuple[float, float]) -> np.ndarray:
    """Offsets +a, -a, +a, ... per frame, shaped (frames, 1, 2)."""
    return (-1.0) ** np.arange(frames)[:, None, None] * np.array(offset)


def test_interocular_and_interpupil_distances():
    gt = face()
    gt[96], gt[97] = (20.0, 30.0), (50.0, 70.0)
    assert normaliser(gt) == 40.0
    assert normaliser(gt, "interpupil") == 50.0


def test_diagonal_of_the_given_boxes_or_of_the_landmarks_box():
    gt = np.stack([face(), face(30.0, 40.0)])
    assert np.allclose(normaliser(gt, "diagonal"), [np.hypot(80, 100), 50.0])
    boxes = np.array([[1.0, 2.0, 7.0, 10.0, 0.99], [0.0, 0.0, 5.0, 12.0, 0.5]])  # extra columns (a score) are ignored
    assert np.allclose(normaliser(gt, "diagonal", boxes), [10.0, 13.0])


def test_nme_averages_the_landmark_errors_over_the_normaliser():
    gt = face()
    gt[96], gt[97] = (20.0, 30.0), (50.0, 70.0)
    pred = gt.copy()
    pred[::2] += (6.0, 8.0)  # half the landmarks 10 pixels off, half exact: mean error 5
    assert nme(pred, gt) == pytest.approx(5 / 40)
    assert nme(pred, gt, "interpupil") == pytest.approx(5 / 50)
    assert nme(pred, gt, "diagonal") == pytest.approx(5 / np.hypot(80, 100))
    assert nme(pred, gt, "diagonal", boxes=np.array([0.0, 0.0, 30.0, 40.0])) == pytest.approx(5 / 50)


def test_a_constant_offset_has_error_but_exactly_no_flicker():
    gt = moving_face(6)
    pred = gt + (3.0, 4.0)
    assert np.allclose(nme(pred, gt), 5 / 40)
    assert nmf(pred, gt) == 0.0
    assert nmf(pred, gt, "released") == 0.0


def test_nmf_of_an_alternating_offset():
    gt = moving_face(7)
    pred = gt + alternating(7, (3.0, 4.0))
    # every landmark's residual jumps by 2|a| = 10 pixels between frames; the box is 80 x 100
    assert nmf(pred, gt) == pytest.approx(10 / np.sqrt(8000))
    assert nmf(pred, gt, "released") == pytest.approx(100 * 10 / np.sqrt(8000 / 256**2))


def test_nmf_normalises_each_pair_by_the_later_frames_box():
    gt = np.stack([face(80.0, 100.0), face(50.0, 50.0), face(100.0, 100.0)])
    pred = gt + alternating(3, (3.0, 4.0))
    # pair (1, 2) by the area 2500 of frame 2, pair (2, 3) by the area 10000 of frame 3
    assert nmf(pred, gt) == pytest.approx(np.sqrt((100 / 2500 + 100 / 10000) / 2))


def test_nmf_is_per_video_over_leading_dimensions():
    gt = np.stack([moving_face(5), moving_face(5)])
    pred = gt + np.stack([alternating(5, (3.0, 4.0)), np.zeros((5, 1, 2))])
    assert np.allclose(nmf(pred, gt), [10 / np.sqrt(8000), 0.0])


def test_released_nmf_is_25600_times_the_paper_nmf():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 300, size=(3, 20, 98, 2))
    pred = gt + rng.normal(0, 2, size=gt.shape)
    gt[1, 5] = np.nan
    assert np.allclose(nmf(pred, gt, "released"), 100 * 256 * nmf(pred, gt, "paper"), rtol=1e-12)


def test_frames_without_ground_truth_are_excluded_and_counted():
    alternating_video = moving_face(5)
    alternating_pred = alternating_video + alternating(5, (3.0, 4.0))
    alternating_video[2] = np.nan  # a real frame that could not be labelled
    short_video = moving_face(3)
    short_pred = short_video + (6.0, 8.0)
    gt = np.stack([alternating_video, np.concatenate([short_video, [NAN_FRAME] * 2])])
    pred = np.stack([alternating_pred, np.concatenate([short_pred, [NAN_FRAME] * 2])])

    scores = score_videos(pred, gt)

    assert (scores.frames_scored, scores.frames_excluded) == (7, 1)
    assert np.allclose(scores.video_nme, [5 / 40, 10 / 40])
    assert scores.nme == pytest.approx((5 / 40 + 10 / 40) / 2)  # per video, not per frame
    # only the pairs (0, 1) and (3, 4) of the first video are scorable
    assert np.allclose(scores.video_nmf, [10 / np.sqrt(8000), 0.0])
    assert scores.nmf == pytest.approx(10 / np.sqrt(8000) / 2)
    assert (scores.norm, scores.nmf_definition) == ("interocular", "paper")


def test_a_video_without_two_consecutive_labelled_frames_has_no_nmf():
    gt = np.stack([moving_face(3), moving_face(3)])
    gt[0, 1] = np.nan
    pred = gt + np.stack([np.zeros((3, 1, 2)), alternating(3, (3.0, 4.0))])
    pred[0, 1] = 0.0
    scores = score_videos(pred, gt, nmf_definition="released")
    assert np.isnan(scores.video_nmf[0]) and scores.video_nme[0] == 0.0
    assert scores.nmf == pytest.approx(100 * 10 / np.sqrt(8000 / 256**2))
    assert scores.nmf_definition == "released"


def test_cumulative_error_distribution_and_failure_rate():
    nmes = [0.05, 0.10, 0.15, np.nan]
    assert np.allclose(ced(nmes, [0.04, 0.05, 0.10, 0.20]), [0, 1 / 3, 2 / 3, 1])
    assert failure_rate(nmes) == pytest.approx(1 / 3)  # an error of exactly 0.10 is not a failure
    assert failure_rate(nmes, threshold=0.08) == pytest.approx(2 / 3)


def test_auc_extremes():
    assert auc([0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert auc([0.11, 0.5]) == 0.0
    assert failure_rate([0.11, 0.5]) == 1.0


def test_auc_of_hand_made_error_lists():
    # CED is 0, then 1/2 from 0.025, then 1 from 0.075: area 0.05 * 1/2 + 0.025 * 1 = 0.05 out of 0.1
    assert auc([0.025, 0.075, np.nan]) == pytest.approx(0.5, abs=1e-3)
    # errors uniform on [0, 0.2]: CED(t) = t / 0.2, area 0.1^2 / 0.4 out of 0.1
    assert auc((np.arange(2000) + 0.5) / 2000 * 0.2) == pytest.approx(0.25, abs=1e-3)


def test_score_images():
    gt = np.stack([face(seed=s) for s in range(4)])
    pred = gt + np.array([(0.6, 0.8), (1.8, 2.4), (3.6, 4.8), (0.0, 0.0)])[:, None, :]  # errors 1, 3, 6 pixels
    gt[3] = np.nan
    scores = score_images(pred, gt)
    assert np.allclose(scores.image_nme, [0.025, 0.075, 0.15, np.nan], equal_nan=True)
    assert scores.nme == pytest.approx(0.25 / 3)
    assert scores.fr10 == pytest.approx(1 / 3)
    # CED 1/3 on [0.025, 0.075), 2/3 on [0.075, 0.1]: area (0.05 + 0.025 * 2) / 3 out of 0.1
    assert scores.auc10 == pytest.approx(1 / 3, abs=1e-3)
    assert (scores.images_scored, scores.images_excluded, scores.norm) == (3, 1, "interocular")


@pytest.mark.parametrize(
    "pred, gt, problem",
    [
        (np.zeros((10, 68, 2)), np.zeros((10, 68, 2)), r"predictions have shape \(10, 68, 2\), expected \(videos, frames, 68 or 98 or 478 points, 2\)"),
        (np.zeros((1, 10, 98, 2)), np.zeros((1, 9, 98, 2)), r"shape \(1, 10, 98, 2\) but ground truth has shape \(1, 9, 98, 2\)"),
        (np.full((1, 2, 98, 2), np.nan), moving_face(2)[None], r"NaN in 2 frames that have ground truth"),
        (moving_face(2)[None], np.zeros((1, 2, 98, 2)), r"zero interocular distance in 2 frames"),
    ],
)
def test_bad_input_is_a_one_line_error_naming_the_problem(pred, gt, problem):
    with pytest.raises(WflwvError, match=problem) as error:
        score_videos(pred, gt)
    assert "\n" not in str(error.value)


def test_boxes_of_the_wrong_shape_are_refused():
    with pytest.raises(WflwvError, match=r"boxes have shape \(3, 4\), expected \(2, >=4\)"):
        normaliser(np.stack([face(), face()]), "diagonal", np.zeros((3, 4)))


def test_memory_of_an_ema_is_one_minus_alpha_and_of_raw_predictions_zero():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 20, 98, 2)).cumsum(axis=1)
    raw[2, 15:] = np.nan  # a shorter video
    smoothed = np.stack([EMA(0.3).apply(video, fps=30) for video in raw])
    assert memory(smoothed, raw) == pytest.approx(0.7)
    assert memory(raw, raw) == 0.0


def test_memory_of_a_method_that_halves_its_distance_to_the_raw_prediction():
    raw = np.random.default_rng(1).normal(size=(1, 10, 98, 2))
    smoothed = raw.copy()
    for n in range(1, 10):
        smoothed[0, n] = raw[0, n] + 0.5 * (smoothed[0, n - 1] - raw[0, n])
    assert memory(smoothed, raw) == pytest.approx(0.5)
