"""Accuracy and stability of landmark predictions: NME, NMF, failure rate, AUC and CED, and the temporal
figures: flicker per face region, the Allan deviation of the residual, lag and the face boxes' jitter.
Every formula is in docs/metrics.md.

Landmarks are (..., N, 2) arrays in pixels, N the points of a scheme (wflwv.schemes: 98 for WFLW, 68 for iBUG),
which sets the normalising points and the face regions; a set of videos is (videos, frames, N, 2), shorter videos
padded with NaN. A frame whose ground truth has any NaN is not scored, and scores count such frames.
Values are fractions: whoever prints a table multiplies by 100. The residual is r = gt - pred.
"""

from dataclasses import dataclass

import numpy as np
from scipy.integrate import simpson

from wflwv.errors import WflwvError
from wflwv import schemes

NORMS = ("interocular", "interpupil", "diagonal")
NMF_DEFINITIONS = ("paper", "released")
FAILURE_THRESHOLD = 0.10
RELEASED_CROP_SIZE = 256  # the released NMJ measures the face scale in units of a 256-pixel crop
ALLAN_WINDOWS = (1, 2, 4, 8, 16, 32)  # frames: octaves from frame-to-frame jitter to a second's drift
MAX_LAG = 8  # frames: the largest delay `lag` looks for either way


def padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack videos of different lengths into (videos, frames, ...), NaN past each video's end."""
    out = np.full((len(arrays), max(len(a) for a in arrays), *arrays[0].shape[1:]), np.nan)
    for row, array in zip(out, arrays):
        row[: len(array)] = array
    return out


def _landmarks(array: np.ndarray, what: str, leading: str = "...") -> np.ndarray:
    """`array` as floats, checked to be shaped (<leading>, N, 2) with N a scheme's points; a "..." in `leading`
    allows extra dimensions."""
    array = np.asarray(array, dtype=float)
    names = leading.split(", ")
    named = len(names) - names.count("...")
    ndim_ok = array.ndim >= named + 2 if "..." in names else array.ndim == named + 2
    if not ndim_ok or array.shape[-1] != 2 or array.shape[-2] not in schemes.point_counts():
        expected = " or ".join(map(str, schemes.point_counts()))
        raise WflwvError(None, f"{what} have shape {array.shape}, expected ({leading}, {expected} points, 2)")
    return array


def _scored_pair(pred: np.ndarray, gt: np.ndarray, leading: str = "...") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (pred, gt) and the mask of scored frames: those whose ground truth has no NaN."""
    pred = _landmarks(pred, "predictions", leading)
    gt = _landmarks(gt, "ground truth", leading)
    if pred.shape != gt.shape:
        raise WflwvError(None, f"predictions have shape {pred.shape} but ground truth has shape {gt.shape}")
    scored = ~np.isnan(gt).any(axis=(-2, -1))
    unpredicted = np.isnan(pred).any(axis=(-2, -1)) & scored
    if unpredicted.any():
        raise WflwvError(None, f"predictions have NaN in {unpredicted.sum()} frames that have ground truth")
    return pred, gt, scored


def _require_positive(values: np.ndarray, scored: np.ndarray, what: str) -> None:
    degenerate = scored & ~(values > 0)
    if degenerate.any():
        raise WflwvError(None, f"ground truth has a zero {what} in {degenerate.sum()} frames")


def _extent(gt: np.ndarray) -> np.ndarray:
    """Bounding box (..., 4) of the landmarks as x1 y1 x2 y2."""
    coordinates = np.ascontiguousarray(np.swapaxes(gt, -1, -2))  # numpy reduces a contiguous last axis ~10x faster
    return np.concatenate([coordinates.min(axis=-1), coordinates.max(axis=-1)], axis=-1)


def face_area(landmarks: np.ndarray) -> np.ndarray:
    """Area (...) of the landmarks' bounding box, the paper's face area, for landmarks (..., N, 2)."""
    box = _extent(landmarks)
    return (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean over the non-NaN values; NaN (without a warning) where there are none."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(values, axis=axis) / np.sum(~np.isnan(values), axis=axis)


def normaliser(gt: np.ndarray, kind: str = "interocular", boxes: np.ndarray | None = None) -> np.ndarray:
    """Per-frame normalising distance (...) of ground truth (..., N, 2), by the points its scheme names.

    "interocular": the outer eye corners (60-72 of WFLW's 98, 36-45 of iBUG's 68); "interpupil": the pupils
    (96-97 of 98), or the eyes' centres where a scheme has no pupils (36-41 and 42-47 of 68); "diagonal": diagonal of `boxes`
    (..., >=4, x1 y1 x2 y2 first) when given, else of the ground-truth landmarks' bounding box.
    """
    gt = _landmarks(gt, "ground truth")
    if kind in ("interocular", "interpupil"):
        return schemes.distance(gt, schemes.scheme_for_points(gt.shape[-2]), kind)
    if kind != "diagonal":
        raise ValueError(f"unknown normalisation {kind!r}, expected one of {NORMS}")
    if boxes is None:
        corners = _extent(gt)
    else:
        corners = np.asarray(boxes, dtype=float)
        if corners.shape[:-1] != gt.shape[:-2] or corners.shape[-1] < 4:
            expected = ", ".join([*map(str, gt.shape[:-2]), ">=4"])
            raise WflwvError(None, f"boxes have shape {corners.shape}, expected ({expected})")
    return np.linalg.norm(corners[..., 2:4] - corners[..., 0:2], axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "interocular", boxes: np.ndarray | None = None) -> np.ndarray:
    """Per-frame normalised mean error (...): mean over the landmarks of ||r|| / d0; NaN where gt is missing."""
    pred, gt, scored = _scored_pair(pred, gt)
    distance = normaliser(gt, norm, boxes)
    _require_positive(distance, scored, f"{norm} distance")
    errors = np.linalg.norm(gt - pred, axis=-1).mean(axis=-1) / np.where(scored, distance, 1.0)
    return np.where(scored, errors, np.nan)


def nmf(pred: np.ndarray, gt: np.ndarray, definition: str = "paper", landmarks: np.ndarray | None = None) -> np.ndarray:
    """Per-video flicker (...) of videos (..., frames, N, 2); NaN for a video without two consecutive scored frames.

    Frame n's value is the RMS over landmarks of ||r_n - r_(n-1)|| / s_n, s_n a scale of frame n's ground truth;
    a video's value is the RMS over the pairs of consecutive scored frames.
    "paper": s_n = sqrt(area of the ground-truth landmarks' box).
    "released": the authors' NMJ, 100 ||.|| / s_n with s_n = sqrt(area / 256^2); it equals 25600 x "paper".
    `landmarks` (indices) restricts the RMS over landmarks to them: a face region's flicker.
    """
    pred, gt, scored = _scored_pair(pred, gt, "..., frames")
    residual = gt - pred
    return _flicker(residual if landmarks is None else residual[..., landmarks, :], flicker_scale(gt, scored, definition))


def flicker_scale(gt: np.ndarray, scored: np.ndarray, definition: str) -> np.ndarray:
    """Per-frame s_n (...) by which an NMF definition divides a residual (the released NMJ's factor 100 included)."""
    area = face_area(gt)
    _require_positive(area, scored, "landmark box area")
    if definition == "paper":
        return np.sqrt(area)
    if definition == "released":
        return np.sqrt(area) / RELEASED_CROP_SIZE / 100.0
    raise ValueError(f"unknown NMF definition {definition!r}, expected one of {NMF_DEFINITIONS}")


def _flicker(residual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """RMS over frame pairs of the RMS over points of ||r_n - r_(n-1)|| / s_n: residual (..., frames, P, 2), scale (..., frames)."""
    jump = np.linalg.norm(np.diff(residual, axis=-3), axis=-1)  # (..., frames - 1, P)
    # NaN, and so left out of the mean, wherever either frame of the pair lacks ground truth
    frame_squares = np.mean((jump / scale[..., 1:, None]) ** 2, axis=-1)
    return np.sqrt(_nanmean(frame_squares, axis=-1))


def region_nmf(pred: np.ndarray, gt: np.ndarray, definition: str = "paper") -> dict[str, np.ndarray]:
    """NMF (...) of each face region of the landmarks' scheme, with the whole face's scale."""
    regions = schemes.scheme_for_points(np.shape(gt)[-2]).regions
    return {region: nmf(pred, gt, definition, landmarks) for region, landmarks in regions.items()}


def allan_deviation(pred: np.ndarray, gt: np.ndarray, windows: tuple[int, ...] = ALLAN_WINDOWS, definition: str = "paper") -> np.ndarray:
    """Allan deviation (..., len(windows)) of the normalised residual y_n = r_n / s_n of videos (..., frames, N, 2).

    sigma(tau)^2 = 1/2 mean over j and the landmarks of ||m_(j+tau) - m_j||^2, m_j the mean of y over
    frames j .. j+tau-1 (overlapping windows; a window with an unscored frame is left out). Jitter
    falls as tau grows (an alternating +-a gives sqrt(2) a at tau 1, 0 at 2), drift grows (c n gives c tau / sqrt(2)).
    """
    pred, gt, scored = _scored_pair(pred, gt, "..., frames")
    y = (gt - pred) / flicker_scale(gt, scored, definition)[..., None, None]
    valid = ~np.isnan(y).any(axis=(-2, -1))
    sums = np.cumsum(np.where(valid[..., None, None], y, 0.0), axis=-3)
    sums = np.concatenate([np.zeros_like(sums[..., :1, :, :]), sums], axis=-3)
    counts = np.concatenate([np.zeros_like(valid[..., :1], dtype=int), np.cumsum(valid, axis=-1)], axis=-1)
    deviations = []
    for tau in windows:
        means = (sums[..., tau:, :, :] - sums[..., :-tau, :, :]) / tau  # the window starting at each frame
        means[(counts[..., tau:] - counts[..., :-tau]) < tau] = np.nan
        squares = np.mean(np.sum((means[..., tau:, :, :] - means[..., :-tau, :, :]) ** 2, axis=-1), axis=-1)
        deviations.append(np.sqrt(0.5 * _nanmean(squares, axis=-1)))
    return np.stack(deviations, axis=-1)


def motion_correlation(pred: np.ndarray, gt: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Sums (..., 3, 2 max_lag + 1), for each delay d = -max_lag .. max_lag, over the frames n and landmarks with
    both motions scored, of <v_n, u_(n+d)>, ||v_n||^2 and ||u_(n+d)||^2: v_n = (g_n - g_(n-1)) / s_n is the truth's
    motion, u_n = (p_n - p_(n-1)) / s_n the method's, s_n = sqrt(face area). Sums of several videos add up."""
    pred, gt, scored = _scored_pair(pred, gt, "..., frames")
    scale = flicker_scale(gt, scored, "paper")[..., 1:, None, None]
    truth, method = (np.diff(points, axis=-3) / scale for points in (gt, pred))
    flat = (*truth.shape[:-2], -1)  # (..., frames - 1, 2 x N)
    v, u = (np.nan_to_num(motion.reshape(flat)) for motion in (truth, method))  # 0 where unscored, so that a product
    v_scored, u_scored = ((~np.isnan(motion.reshape(flat))).astype(float) for motion in (truth, method))  # counts where both are
    terms = ((v, u), (v * v, u_scored), (v_scored, u * u))
    frames = v.shape[-2]
    sums = []
    for d in range(-max_lag, max_lag + 1):
        pairs = max(frames - abs(d), 0)  # truth's frame n with the method's n + d
        at_n, at_nd = (slice(start, start + pairs) for start in (max(0, -d), max(0, d)))
        sums.append([np.einsum("...fk,...fk->...", a[..., at_n, :], b[..., at_nd, :]) for a, b in terms])
    return np.moveaxis(np.array(sums), (0, 1), (-1, -2))


def lag(sums: np.ndarray) -> np.ndarray:
    """The delay (...) in frames at which the method's motion best matches the truth's, from motion_correlation's sums
    (..., 3, 2 D + 1): the peak of the normalised correlation <v, u> / (||v|| ||u||) over d = -D .. D, refined to a
    fraction of a frame by the parabola through it and its neighbours. Positive: the method follows the truth."""
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = sums[..., 0, :] / np.sqrt(sums[..., 1, :] * sums[..., 2, :])
    reach = correlation.shape[-1] // 2
    peak = np.argmax(np.where(np.isnan(correlation), -np.inf, correlation), axis=-1)
    inner = np.clip(peak, 1, 2 * reach - 1)
    left, centre, right = (np.take_along_axis(correlation, (inner + k)[..., None], axis=-1)[..., 0] for k in (-1, 0, 1))
    curvature = left - 2 * centre + right
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where((peak == inner) & (curvature < 0), 0.5 * (left - right) / curvature, 0.0)
    return np.where(np.isnan(correlation).all(axis=-1), np.nan, peak - reach + offset)


def box_nmf(boxes: np.ndarray, gt: np.ndarray, definition: str = "paper") -> np.ndarray:
    """The face boxes' jitter (...): NMF of the boxes' two corners (..., frames, >=4, x1 y1 x2 y2 first) against the
    corners of the ground-truth landmarks' box, so that a box moving with the face does not count."""
    gt = _landmarks(gt, "ground truth", "..., frames")
    boxes = np.asarray(boxes, dtype=float)
    if boxes.shape[:-1] != gt.shape[:-2] or boxes.shape[-1] < 4:
        raise WflwvError(None, f"boxes have shape {boxes.shape}, expected ({', '.join(map(str, gt.shape[:-2]))}, >=4)")
    scored = ~np.isnan(gt).any(axis=(-2, -1))
    residual = (_extent(gt) - boxes[..., :4]).reshape(*boxes.shape[:-1], 2, 2)
    return _flicker(residual, flicker_scale(gt, scored, definition))


def memory(smoothed: np.ndarray, raw: np.ndarray) -> float:
    """How much of its previous output a temporal method keeps: the least-squares m in y_n - x_n = m (y_(n-1) - x_n).

    smoothed (y) and raw (x) are (videos, frames, N, 2) (NaN padding allowed), x the per-frame
    predictions the method starts from. An EMA of coefficient alpha keeps exactly 1 - alpha; the raw
    predictions themselves keep 0. For RwR, x is the cold-start prediction of the same model.
    """
    smoothed = _landmarks(smoothed, "smoothed predictions", "videos, frames")
    raw = _landmarks(raw, "raw predictions", "videos, frames")
    if smoothed.shape != raw.shape:
        raise WflwvError(None, f"smoothed predictions have shape {smoothed.shape} but raw predictions have shape {raw.shape}")
    kept = smoothed[:, 1:] - raw[:, 1:]
    previous = smoothed[:, :-1] - raw[:, 1:]
    pairs = ~(np.isnan(kept) | np.isnan(previous))
    return float(np.sum(kept[pairs] * previous[pairs]) / np.sum(previous[pairs] ** 2))


def ced(nmes: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Cumulative error distribution: the fraction of the (non-NaN) NMEs <= each threshold."""
    errors = np.sort(np.asarray(nmes, dtype=float).ravel())
    errors = errors[~np.isnan(errors)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.searchsorted(errors, np.asarray(thresholds, dtype=float), side="right") / errors.size


def failure_rate(nmes: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Fraction of the (non-NaN) NMEs above `threshold`."""
    return float(1.0 - ced(nmes, [threshold])[0])


def auc(nmes: np.ndarray, threshold: float = FAILURE_THRESHOLD, step: float = 1e-4) -> float:
    """Area under the CED from 0 to `threshold` (Simpson's rule on a grid of `step`), divided by `threshold`."""
    thresholds = np.linspace(0.0, threshold, round(threshold / step) + 1)
    return float(simpson(ced(nmes, thresholds), x=thresholds) / threshold)


@dataclass(frozen=True)
class VideoScores:
    """Scores of a set of videos, as fractions."""

    nme: float  # mean of the per-video NMEs
    nmf: float  # mean of the per-video NMFs
    video_nme: np.ndarray  # (videos,) mean over each video's scored frames
    video_nmf: np.ndarray  # (videos,)
    frames_scored: int
    frames_excluded: int  # frames without ground truth; padding (all NaN in both arrays) is not counted
    norm: str
    nmf_definition: str


@dataclass(frozen=True)
class ImageScores:
    """Scores of a set of still images, as fractions."""

    nme: float
    fr10: float
    auc10: float
    image_nme: np.ndarray  # (images,), NaN where excluded
    images_scored: int
    images_excluded: int
    norm: str


def score_videos(
    pred: np.ndarray, gt: np.ndarray, norm: str = "interocular", nmf_definition: str = "paper", boxes: np.ndarray | None = None
) -> VideoScores:
    """Score predictions against ground truth, both (videos, frames, N, 2) padded with NaN."""
    pred, gt, scored = _scored_pair(pred, gt, "videos, frames")
    padding = np.isnan(pred).all(axis=(-2, -1)) & np.isnan(gt).all(axis=(-2, -1))
    video_nme = _nanmean(nme(pred, gt, norm, boxes), axis=-1)
    video_nmf = nmf(pred, gt, nmf_definition)
    return VideoScores(
        nme=float(_nanmean(video_nme)),
        nmf=float(_nanmean(video_nmf)),
        video_nme=video_nme,
        video_nmf=video_nmf,
        frames_scored=int(scored.sum()),
        frames_excluded=int((~scored & ~padding).sum()),
        norm=norm,
        nmf_definition=nmf_definition,
    )


def score_images(pred: np.ndarray, gt: np.ndarray, norm: str = "interocular", boxes: np.ndarray | None = None) -> ImageScores:
    """Score still-image predictions against ground truth, both (images, N, 2)."""
    pred, gt, scored = _scored_pair(pred, gt, "images")
    image_nme = nme(pred, gt, norm, boxes)
    return ImageScores(
        nme=float(_nanmean(image_nme)),
        fr10=failure_rate(image_nme, FAILURE_THRESHOLD),
        auc10=auc(image_nme, FAILURE_THRESHOLD),
        image_nme=image_nme,
        images_scored=int(scored.sum()),
        images_excluded=int((~scored).sum()),
        norm=norm,
    )


@dataclass(frozen=True)
class TemporalScores:
    """The temporal figures of a set of videos, each named: nmf_<region>, allan_<tau>, box_nmf (fractions) and lag (frames)."""

    video: dict[str, np.ndarray]  # name -> (videos,)
    overall: dict[str, float]  # name -> the set's value: the mean over videos, lag's from the pooled motion correlation

    def scaled(self, factor: float) -> "TemporalScores":
        """Every figure but lag multiplied by `factor`, as a table prints NMF."""
        def scale(name, value):
            return value if name == "lag" else factor * value

        return TemporalScores({n: scale(n, v) for n, v in self.video.items()}, {n: scale(n, v) for n, v in self.overall.items()})


def temporal_scores(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, nmf_definition: str = "paper") -> TemporalScores:
    """Region flicker, Allan deviation, lag and box jitter of predictions, ground truth (videos, frames, N, 2) and
    boxes (videos, frames, >=4), all padded with NaN."""
    video = {f"nmf_{region}": values for region, values in region_nmf(pred, gt, nmf_definition).items()}
    video |= {f"allan_{tau}": values for tau, values in zip(ALLAN_WINDOWS, np.moveaxis(allan_deviation(pred, gt, definition=nmf_definition), -1, 0))}
    video["box_nmf"] = box_nmf(boxes, gt, nmf_definition)
    overall = {name: float(_nanmean(values)) for name, values in video.items()}
    sums = motion_correlation(pred, gt)
    video["lag"], overall["lag"] = lag(sums), float(lag(sums.sum(axis=0)))
    return TemporalScores(video, overall)
