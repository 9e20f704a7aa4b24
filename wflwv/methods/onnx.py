"""`onnx`: a user's exported landmark model, described by a small TOML spec, run with onnxruntime.

The spec (paths relative to it):

    model = "hrnet.onnx"          # the exported model: one image input (batch, 3, size, size), float
    input_size = 64               # the square crop's side in pixels
    crop_scale = 1.2              # crop side = the box's longer side * crop_scale, centred on the box
    colour = "rgb"                # the input's channel order: "rgb" or "bgr"
    mean = [0.485, 0.456, 0.406]  # per input channel, on pixels scaled to [0, 1]: input = (pixel / 255 - mean) / std
    std = [0.229, 0.224, 0.225]
    output = "heatmaps"           # "heatmaps" (batch, points, D, D), non-negative, read by soft-argmax;
                                  # or "coordinates" (batch, points, 2), x y in [0, 1] crop units
    scheme = "wflw98"             # the points' scheme

Heatmap pixel i reads as i / D of the crop and a crop unit u is pixel u * input_size, as wflwv's own
models (wflwv.models.heatmaps.soft_argmax), so the demo models exported with torch.onnx give their
landmarks to float rounding (tests/test_methods.py).
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wflwv import io
from wflwv.data.crop import box_to_affine, crop, invert_affine, transform_points
from wflwv.errors import WflwvError
from wflwv.methods.common import has_face, require
from wflwv.models.heatmaps import soft_argmax
from wflwv.schemes import get_scheme

OUTPUTS = ("heatmaps", "coordinates")
COLOURS = ("rgb", "bgr")
KEYS = {"model": str, "input_size": int, "crop_scale": float, "colour": str, "mean": list, "std": list, "output": str, "scheme": str}
BATCH = 32  # crops per onnxruntime call


@dataclass(frozen=True)
class OnnxSpec:
    path: Path  # the spec file
    model: Path
    input_size: int
    crop_scale: float
    colour: str
    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)
    output: str
    scheme: str


def read_spec(path: str | Path) -> OnnxSpec:
    """The spec at `path`, every key checked; a problem is one WflwvError naming the spec."""
    path = Path(path)
    if not path.is_file():
        raise WflwvError(path, "no such ONNX spec file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(path, f"not a TOML file: {error}") from None
    unknown = sorted(set(data) - set(KEYS))
    missing = sorted(set(KEYS) - set(data))
    if unknown or missing:
        raise WflwvError(path, f"unknown keys {unknown}" if unknown else f"missing keys {missing}")
    for key, kind in KEYS.items():
        if not isinstance(data[key], int | float if kind is float else kind):
            raise WflwvError(path, f"{key} must be a {kind.__name__}, got {data[key]!r}")
    if data["output"] not in OUTPUTS or data["colour"] not in COLOURS:
        raise WflwvError(path, f"output must be one of {OUTPUTS} and colour one of {COLOURS}")
    mean, std = (np.asarray(data[key], dtype=np.float32) for key in ("mean", "std"))
    if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
        raise WflwvError(path, "mean and std must be three numbers each, std positive")
    if data["input_size"] < 1 or not data["crop_scale"] > 0:
        raise WflwvError(path, "input_size and crop_scale must be positive")
    try:
        get_scheme(data["scheme"])
    except WflwvError as error:
        raise WflwvError(path, error.problem) from None
    model = path.parent / data["model"]
    if not model.is_file():
        raise WflwvError(path, f"its model {model} does not exist")
    return OnnxSpec(path, model, data["input_size"], float(data["crop_scale"]), data["colour"], mean, std, data["output"], data["scheme"])


class OnnxMethod:
    """A spec'd ONNX model on each frame's box crop."""

    name = "onnx"

    def __init__(self, spec: str | Path):
        ort = require("onnxruntime", self.name, "onnx")
        self.spec = read_spec(spec)
        self.scheme = self.spec.scheme
        try:
            self.session = ort.InferenceSession(str(self.spec.model), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own classes for a file it cannot read
            raise WflwvError(self.spec.model, f"onnxruntime cannot load it: {str(error).splitlines()[0]}") from None
        self.input_name, self.batch, self.fixed_batch = check_model(self.session, self.spec)
        self.identity = {"model": io.file_digest(self.spec.model)}  # the spec's own digest comes with the options

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        spec = self.spec
        landmarks = np.full((len(frames), get_scheme(self.scheme).n_points, 2), np.nan)
        faces = np.flatnonzero(has_face(boxes))
        for start in range(0, len(faces), self.batch):
            chosen = faces[start : start + self.batch]
            affines = np.stack([box_to_affine(boxes[i], spec.input_size, spec.crop_scale) for i in chosen])
            crops = np.stack([crop(frames[i], affine, spec.input_size) for i, affine in zip(chosen, affines)])
            images = to_input(crops, spec)
            if self.fixed_batch:  # a model exported for a fixed batch gets it full, padded with blank crops
                images = np.concatenate([images, np.zeros((self.batch - len(images), *images.shape[1:]), np.float32)])
            units = read_points(self.session.run(None, {self.input_name: images})[0][: len(chosen)], spec)
            landmarks[chosen] = transform_points(units.astype(np.float64) * spec.input_size, np.stack([invert_affine(a) for a in affines]))
        return landmarks


def check_model(session, spec: OnnxSpec) -> tuple[str, int, bool]:
    """The model's image input name, the batch it is fed and whether that batch is fixed; a spec that does not match its inputs is refused naming the spec."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise WflwvError(spec.path, f"its model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the onnx method feeds one image input")
    shape, expected = inputs[0].shape, [None, 3, spec.input_size, spec.input_size]
    fixed = [isinstance(dim, int) for dim in shape]
    if len(shape) != 4 or any(f and want is not None and dim != want for dim, want, f in zip(shape, expected, fixed)):
        raise WflwvError(spec.path, f"input_size {spec.input_size} does not match the model's input {inputs[0].name!r} of shape {shape} (expected (batch, 3, {spec.input_size}, {spec.input_size}))")
    if inputs[0].type != "tensor(float)":
        raise WflwvError(spec.path, f"the model's input {inputs[0].name!r} is {inputs[0].type}; the onnx method feeds tensor(float)")
    output, points = session.get_outputs()[0].shape, get_scheme(spec.scheme).n_points
    if len(output) != {"heatmaps": 4, "coordinates": 3}[spec.output] or output[1] not in (points, None) and not isinstance(output[1], str):
        raise WflwvError(spec.path, f"output {spec.output!r} of scheme {spec.scheme} ({points} points) does not match the model's first output of shape {output}")
    return inputs[0].name, shape[0] if fixed[0] else BATCH, fixed[0]


def to_input(crops: np.ndarray, spec: OnnxSpec) -> np.ndarray:
    """uint8 RGB crops (B, S, S, 3) -> the model's float32 input (B, 3, S, S)."""
    pixels = crops[..., ::-1] if spec.colour == "bgr" else crops
    return np.ascontiguousarray(((pixels.astype(np.float32) / 255 - spec.mean) / spec.std).transpose(0, 3, 1, 2))


def read_points(output: np.ndarray, spec: OnnxSpec) -> np.ndarray:
    """(B, points, 2) in [0, 1] crop units from the model's output."""
    return output if spec.output == "coordinates" else soft_argmax(torch.from_numpy(output)).numpy()
