"""From other boxes to the box convention the landmark models were trained on.

Landmark models are trained on crops of their stills' annotated boxes (WFLW's rectangles, or
`wflwv.synth.scene.face_box` in the synthetic world). An MTCNN box sits differently on the face,
and so does the tight box of a set of landmarks. A BoxMap moves a box's centre by a fraction of its
width and height and scales its width and height; one is fitted for each source on still faces
with ground truth, and the pair is stored as data (shipped: wflwv/configs/box_calibration.json).
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np

from wflwv import io
from wflwv.boxes.detect import detect_frames
from wflwv.boxes.track import iou
from wflwv.configs import BOX_CALIBRATION as DEFAULT_CALIBRATION
from wflwv.data.wflw import Face, WflwStills
from wflwv.errors import WflwvError

MIN_MATCH_IOU = 0.3  # a detection overlapping the annotated box less is not that face
StillsPredictor = Callable[[WflwStills, list[Face]], np.ndarray]  # (stills, faces) -> landmarks (faces, 98, 2), image pixels


def centre_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (..., 2) and sizes (..., 2) of boxes (..., >=4)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[..., :2] + boxes[..., 2:4]) / 2, boxes[..., 2:4] - boxes[..., :2]


def from_centre_size(centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.concatenate([centre - size / 2, centre + size / 2], axis=-1)


@dataclass(frozen=True)
class BoxMap:
    """centre += offset * size, size *= scale, per coordinate (x, y)."""

    offset_x: float = 0.0
    offset_y: float = 0.0
    scale_x: float = 1.0
    scale_y: float = 1.0

    def __call__(self, boxes: np.ndarray) -> np.ndarray:
        """Mapped x1 y1 x2 y2 of boxes (..., >=4)."""
        centre, size = centre_size(boxes)
        return from_centre_size(centre + [self.offset_x, self.offset_y] * size, [self.scale_x, self.scale_y] * size)


def fit_box_map(sources: np.ndarray, targets: np.ndarray) -> BoxMap:
    """The map taking boxes `sources` (n, 4) to `targets` (n, 4): medians of the per-face offsets and
    scales, so that a few mismatched faces do not move it."""
    if len(sources) == 0:
        raise ValueError("no box pairs to fit a box map on")
    source_centre, source_size = centre_size(sources)
    target_centre, target_size = centre_size(targets)
    offset = np.median((target_centre - source_centre) / source_size, axis=0)
    scale = np.median(target_size / source_size, axis=0)
    return BoxMap(*map(float, offset), *map(float, scale))


@dataclass(frozen=True)
class Calibration:
    detector: BoxMap  # MTCNN box -> model box
    landmarks: BoxMap  # tight box of the 98 landmarks -> model box
    fitted_on: str = ""  # where the faces came from
    faces: int = 0  # faces with a matched detection that the detector map was fitted on

    def save(self, path: str | Path) -> None:
        io.save_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path | Traversable = DEFAULT_CALIBRATION) -> "Calibration":
        path = Path(path) if isinstance(path, str) else path
        if not path.is_file():
            raise WflwvError(path, "no such box calibration file (fit one with `wflwv boxes --fit-calibration STILLS`)")
        try:
            data = json.loads(path.read_text())
            return cls(BoxMap(**data.pop("detector")), BoxMap(**data.pop("landmarks")), **data)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as error:
            raise WflwvError(path, f"not a box calibration ({type(error).__name__}: {error})") from None


def build_calibration(build: str | Path) -> Path:
    """Where a build folder keeps its own calibration, refitted on real stills (`make reproduce`)."""
    return Path(build) / "box_calibration.json"


def calibration_for(build: str | Path) -> Path | Traversable:
    """The build's own calibration when it has one, else the shipped one (fitted on the synthetic world)."""
    own = build_calibration(build)
    return own if own.is_file() else DEFAULT_CALIBRATION


def members_predictor(checkpoints: list[Path], device: str = "cpu") -> StillsPredictor:
    """Still landmarks as the mean of these checkpoints' predictions: the landmark map of a labelling ensemble."""
    from wflwv.models import load_checkpoint
    from wflwv.stills import predict_stills

    models = [load_checkpoint(path, device)[0] for path in checkpoints]
    return lambda stills, faces: np.mean([predict_stills(model, stills, faces, device=device) for model in models], axis=0)


def tight_boxes(landmarks: np.ndarray) -> np.ndarray:
    """x_min y_min x_max y_max of landmarks (..., 98, 2)."""
    return np.concatenate([landmarks.min(axis=-2), landmarks.max(axis=-2)], axis=-1)


def fit_calibration(stills_root: str | Path, split: str = "train", device: str = "cpu", max_faces: int | None = None, predict: StillsPredictor | None = None) -> Calibration:
    """Fit both maps on a WFLW-layout still set: MTCNN is run on every image and each face's best
    overlapping detection is paired with its annotated box. The landmark map is fitted on the true
    landmarks, or on those of `predict` (such as wflwv.stills.predict_stills with a model): a
    predictor whose landmarks spread less or more than the truth needs its own map, or each
    bootstrap round would shrink or grow the boxes by that factor."""
    stills = WflwStills(stills_root)
    faces = stills.faces(split)[:max_faces]
    if not faces:
        raise WflwvError(stills.annotation_path(split), "has no faces to fit a box calibration on")
    detected, annotated = [], []
    for face in faces:
        detections = detect_frames([stills.load_image(face)], device)[0]
        if len(detections.probs):
            overlap = iou(face.box, detections.boxes)
            if overlap.max() >= MIN_MATCH_IOU:
                detected.append(detections.boxes[np.argmax(overlap)])
                annotated.append(face.box)
    if not detected:
        raise WflwvError(stills.annotation_path(split), f"MTCNN found none of its {len(faces)} faces")
    boxes = np.stack([face.box for face in faces])
    return Calibration(
        detector=fit_box_map(np.stack(detected), np.stack(annotated)),
        landmarks=fit_box_map(tight_boxes(predict(stills, faces) if predict else np.stack([face.landmarks for face in faces])), boxes),
        fitted_on=f"{stills_root} ({split})",
        faces=len(detected),
    )
