"""Still faces as model inputs: square crops around the face box, with training augmentations."""

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, transform_points
from wflwv.data.wflw import Face, WflwStills
from wflwv.landmarks import flip_horizontally


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transforms; the defaults follow the paper's list (rotation, flip, translation, blur, occlusion) plus scale."""

    rotation_deg: float = 25.0
    scale: float = 0.1  # relative change of the crop side
    translation: float = 0.08  # of the crop side
    flip_prob: float = 0.5
    blur_prob: float = 0.2
    blur_max_sigma: float = 2.5
    occlusion_prob: float = 0.3
    occlusion_max_side: float = 0.4  # of the crop side
    # a dark room with the camera's gain turned up, as the hard videos' "dark" challenge: the image
    # times a gain in [low_light_min_gain, 0.5], plus Gaussian noise up to low_light_max_noise levels
    low_light_prob: float = 0.0
    low_light_min_gain: float = 0.22
    low_light_max_noise: float = 14.0

    def __post_init__(self):
        for name in ("flip_prob", "blur_prob", "occlusion_prob", "low_light_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation {name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0 < self.low_light_min_gain <= 0.5:
            raise ValueError(f"augmentation low_light_min_gain must be in (0, 0.5], got {self.low_light_min_gain}")


def jittered_affine(box: np.ndarray, size: int, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """The crop affine of `box` composed with a random rotation, scale and shift about the crop centre."""
    angle = rng.uniform(-aug.rotation_deg, aug.rotation_deg)
    scale = 1 + rng.uniform(-aug.scale, aug.scale)
    shift = rng.uniform(-aug.translation, aug.translation, size=2) * size
    jitter = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    jitter[:, 2] += shift
    return np.vstack([jitter, [0, 0, 1]])[:2] @ np.vstack([box_to_affine(box, size), [0, 0, 1]])


def degrade(image: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Random Gaussian blur, a random occluding rectangle (flat colour or noise), then random low light."""
    size = image.shape[0]
    if rng.random() < aug.blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, aug.blur_max_sigma))
    if rng.random() < aug.occlusion_prob:
        w, h = (rng.uniform(0.1, aug.occlusion_max_side, size=2) * size).astype(int) + 1
        x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        patch = rng.integers(0, 256, size=(h, w, 3)) if rng.random() < 0.5 else rng.integers(0, 256, size=3)
        image = image.copy()
        image[y : y + h, x : x + w] = patch
    if rng.random() < aug.low_light_prob:
        gain, noise = rng.uniform(aug.low_light_min_gain, 0.5), rng.uniform(0.3, 1.0) * aug.low_light_max_noise
        image = np.clip(image * gain + noise * rng.standard_normal(image.shape), 0, 255).astype(np.uint8)
    return image


class StillCrops(torch.utils.data.Dataset):
    """(image tensor (3, S, S), landmarks (98, 2) in [0, 1] crop units) for each face of a split.

    With `augment`, sample i of epoch e is drawn from its own generator seeded by (seed, e, i), so a
    run is reproducible whatever the number of loader workers. With `harder` too, each sample is
    (image, harder image, landmarks): the harder image is the augmented one degraded once more by
    `harder`'s blur, occlusion and low light (its geometric ranges are not used).
    """

    def __init__(self, stills: WflwStills, faces: list[Face], size: int, augment: Augmentation | None = None, seed: int = 0,
                 harder: Augmentation | None = None):
        self.stills, self.faces, self.size, self.augment, self.seed, self.harder = stills, faces, size, augment, seed, harder
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        face = self.faces[index]
        image = self.stills.load_image(face)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.augment is None:
            affine = box_to_affine(face.box, self.size)
            face_crop, points = crop(image, affine, self.size), transform_points(face.landmarks, affine)
        else:
            affine = jittered_affine(face.box, self.size, self.augment, rng)
            face_crop, points = crop(image, affine, self.size), transform_points(face.landmarks, affine)
            if rng.random() < self.augment.flip_prob:
                face_crop, points = face_crop[:, ::-1], flip_horizontally(points, self.size)
            face_crop = degrade(face_crop, self.augment, rng)
        crops = [face_crop] if self.harder is None else [face_crop, degrade(face_crop, self.harder, rng)]
        landmarks = torch.from_numpy((points / self.size).astype(np.float32))
        return *crops_to_tensor(np.stack(crops)), landmarks


def predict_stills(model: torch.nn.Module, stills: WflwStills, faces: list[Face], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Landmarks (N, 98, 2) in image pixels for each face, from the crop of its box."""
    affines = np.stack([box_to_affine(face.box, model.args.im_size) for face in faces])
    return predict_crops(model, (stills.load_image(face) for face in faces), affines, batch_size, device)


@torch.no_grad()
def predict_crops(model: torch.nn.Module, images: Iterable[np.ndarray], affines: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Landmarks (N, 98, 2) in image pixels of N images, each warped by its affine (N, 2, 3) to the model's input crop."""
    size = model.args.im_size
    model.eval()
    images, predictions = iter(images), []
    for start in range(0, len(affines), batch_size):
        batch = affines[start : start + batch_size]
        crops = np.stack([crop(next(images), affine, size) for affine in batch])
        landmarks = model(crops_to_tensor(crops).to(device)).landmarks.cpu().numpy() * size
        predictions.append(transform_points(landmarks, np.stack([invert_affine(affine) for affine in batch])))
    return np.concatenate(predictions)
