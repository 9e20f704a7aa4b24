"""WFLW stills: the official annotation files and image folders, and the pre-cropped release used by LDEQ."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from wflwv import io
from wflwv.errors import WflwvError
from wflwv.landmarks import N_LANDMARKS, WFLW98
from wflwv.schemes import normalisation_points, zero_interocular

ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
# Test subsets of the pre-cropped release (test_<name>) and the attribute flag that selects each.
SUBSETS = {
    "largepose": "pose",
    "expression": "expression",
    "illumination": "illumination",
    "makeup": "makeup",
    "occlusion": "occlusion",
    "blur": "blur",
}
SPLITS = ("train", "test")
PRECROPPED_SPLITS = (*SPLITS, *(f"test_{subset}" for subset in SUBSETS))

N_COORDINATES = 2 * N_LANDMARKS
N_NUMBERS = N_COORDINATES + 4 + len(ATTRIBUTES)  # the numbers before the image path on an annotation line
ANNOTATIONS_DIR = Path("WFLW_annotations") / "list_98pt_rect_attr_train_test"
IMAGES_DIR = "WFLW_images"
JPEG_END, JPEG_TAIL = b"\xff\xd9", 1024


@dataclass
class Face:
    """One annotated face: landmarks and box in image pixels, attribute flags, image path relative to WFLW_images/."""

    landmarks: np.ndarray  # (98, 2)
    box: np.ndarray  # (4,) x_min y_min x_max y_max
    attributes: np.ndarray  # (6,) 0/1 in the order of ATTRIBUTES
    image: str

    def __post_init__(self):
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64)
        self.box = np.asarray(self.box, dtype=np.float64)
        self.attributes = np.asarray(self.attributes, dtype=np.int64)
        if self.landmarks.shape != (N_LANDMARKS, 2) or self.box.shape != (4,) or self.attributes.shape != (len(ATTRIBUTES),):
            raise ValueError(
                f"face arrays have shapes {self.landmarks.shape}, {self.box.shape}, {self.attributes.shape}; "
                f"expected ({N_LANDMARKS}, 2), (4,), ({len(ATTRIBUTES)},)"
            )
        if not self.image or self.image != self.image.strip() or len(self.image.splitlines()) != 1:
            raise ValueError(f"image path {self.image!r} cannot be written on one annotation line")
        if PurePosixPath(self.image).is_absolute() or ".." in PurePosixPath(self.image).parts or "\\" in self.image:
            raise ValueError(f"image path {self.image!r} leaves {IMAGES_DIR}/: it must be relative, without '..'")


def parse_numbers(tokens: Sequence[str]) -> np.ndarray:
    """Tokens as finite floats; a ValueError names the first bad one (counting from 1)."""
    values = []
    for index, token in enumerate(tokens, 1):
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"value {index} ({token!r}) is not a number") from None
        if not np.isfinite(value):
            raise ValueError(f"value {index} ({token!r}) is not finite")
        values.append(value)
    return np.array(values)


def parse_face(line: str) -> Face:
    fields = line.split(maxsplit=N_NUMBERS)
    if len(fields) != N_NUMBERS + 1:
        raise ValueError(
            f"{len(fields)} fields, expected {N_COORDINATES} landmark coordinates, 4 box numbers, "
            f"{len(ATTRIBUTES)} attribute flags and an image path"
        )
    values = parse_numbers(fields[:N_NUMBERS])
    flags = values[-len(ATTRIBUTES) :]
    for name, flag in zip(ATTRIBUTES, flags):
        if flag not in (0, 1):
            raise ValueError(f"attribute flag {name} is {flag:g}, expected 0 or 1")
    landmarks = values[:N_COORDINATES].reshape(N_LANDMARKS, 2)
    if zero_interocular(landmarks, WFLW98):
        raise ValueError(f"{normalisation_points(WFLW98, 'interocular')} coincide (zero inter-ocular distance)")
    return Face(landmarks, values[N_COORDINATES:-len(ATTRIBUTES)], flags, fields[-1].strip())


def read_lines(path: Path, parse):
    """parse(line) for each non-blank line of a text file; errors name the file and the line number."""
    if not path.is_file():
        raise WflwvError(path, "no such annotation file")
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                items.append(parse(line))
            except ValueError as error:
                raise WflwvError(path, f"line {number}: {error}") from None
    return items


def read_annotations(path: str | Path) -> list[Face]:
    """The faces of an official annotation file (list_98pt_rect_attr_{train,test}.txt)."""
    return read_lines(Path(path), parse_face)


def format_number(value: float) -> str:
    return np.format_float_positional(value, trim="-")  # the shortest text that reads back exactly


def write_annotations(path: str | Path, faces: Sequence[Face]) -> None:
    lines = (
        " ".join([*map(format_number, face.landmarks.ravel()), *map(format_number, face.box), *map(str, face.attributes), face.image])
        for face in faces
    )
    io.save_text(path, "".join(f"{line}\n" for line in lines))


def check_image_file(path: Path) -> None:
    """The file exists, its header reads as an image and, for a JPEG, it is whole (libjpeg only warns on a truncated one)."""
    if not path.is_file():
        raise WflwvError(path, "no such image")
    try:
        with Image.open(path) as image:
            image_format = image.format
    except (UnidentifiedImageError, OSError) as error:
        raise WflwvError(path, f"not a readable image ({error.__class__.__name__})") from None
    if image_format == "JPEG":
        # Entropy-coded data never holds FF D9, so a whole file has it near its end (some writers append a few bytes after it)
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - JPEG_TAIL))
            if JPEG_END not in f.read():
                raise WflwvError(path, "truncated JPEG: no end-of-image marker")


def read_image(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3)."""
    check_image_file(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise WflwvError(path, "not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a uint8 RGB image atomically, in the format of the file's extension."""
    ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise WflwvError(path, f"cannot encode an image as {path.suffix!r}")
    with io.atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


class WflwStills:
    """The official WFLW layout: WFLW_annotations/list_98pt_rect_attr_train_test/*.txt and WFLW_images/."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def annotation_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise WflwvError(None, f"unknown WFLW split {split!r}, expected one of {', '.join(SPLITS)}")
        return self.root / ANNOTATIONS_DIR / f"list_98pt_rect_attr_{split}.txt"

    def faces(self, split: str, subset: str = "full") -> list[Face]:
        """The faces of a split; a subset other than "full" keeps those whose attribute flag is 1."""
        if subset != "full" and subset not in SUBSETS:
            raise WflwvError(None, f"unknown WFLW subset {subset!r}, expected full or one of {', '.join(SUBSETS)}")
        faces = read_annotations(self.annotation_path(split))
        if subset == "full":
            return faces
        flag = ATTRIBUTES.index(SUBSETS[subset])
        return [face for face in faces if face.attributes[flag] == 1]

    def image_path(self, face: Face) -> Path:
        return self.root / IMAGES_DIR / face.image

    def check_images(self, faces: Sequence[Face]) -> None:
        """Every face's image file, checked without decoding it: bad images are found before any work."""
        for face in faces:
            check_image_file(self.image_path(face))

    def load_image(self, face: Face) -> np.ndarray:
        """uint8 RGB (H, W, 3)."""
        return read_image(self.image_path(face))


def precropped_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(label file, image folder) of a split of the pre-cropped layout: root/<split>.txt and root/<split>/."""
    if split not in PRECROPPED_SPLITS:
        raise WflwvError(None, f"unknown pre-cropped WFLW split {split!r}, expected one of {', '.join(PRECROPPED_SPLITS)}")
    root = Path(root)
    return root / f"{split}.txt", root / split


def parse_precropped(line: str) -> tuple[str, np.ndarray]:
    name, *numbers = line.split()
    if len(numbers) != N_COORDINATES:
        raise ValueError(f"{len(numbers)} numbers after the image name, expected {N_COORDINATES}")
    return name, parse_numbers(numbers).reshape(N_LANDMARKS, 2)


def read_precropped(root: str | Path, split: str) -> tuple[list[str], Path, np.ndarray]:
    """(image names, image folder, landmarks (N, 98, 2) in [0, 1] crop units) of a pre-cropped split."""
    labels_path, images_dir = precropped_paths(root, split)
    rows = read_lines(labels_path, parse_precropped)
    names = [name for name, _ in rows]
    landmarks = np.stack([points for _, points in rows]) if rows else np.zeros((0, N_LANDMARKS, 2))
    return names, images_dir, landmarks


def write_precropped(root: str | Path, split: str, names: Sequence[str], crops: np.ndarray, landmarks01: np.ndarray) -> None:
    """Write crops (N, S, S, 3) uint8 RGB as root/<split>/<name> and their landmarks (N, 98, 2) as root/<split>.txt."""
    labels_path, images_dir = precropped_paths(root, split)
    if landmarks01.shape != (len(names), N_LANDMARKS, 2) or len(crops) != len(names):
        raise WflwvError(
            labels_path,
            f"{len(names)} names, {len(crops)} crops and landmarks of shape {landmarks01.shape}; "
            f"expected as many crops and landmarks of shape ({len(names)}, {N_LANDMARKS}, 2)",
        )
    for name in names:
        if len(name.split()) != 1 or name != Path(name).name or name in (".", ".."):
            raise WflwvError(images_dir / name, "an image name must be a plain file name without whitespace")
    for name, face_crop in zip(names, crops):
        write_image(images_dir / name, face_crop)
    lines = (" ".join([name, *map(format_number, points.ravel())]) for name, points in zip(names, landmarks01))
    io.save_text(labels_path, "".join(f"{line}\n" for line in lines))
