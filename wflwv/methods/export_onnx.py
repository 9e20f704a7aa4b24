"""`wflwv export-onnx`: a wflwv checkpoint as an ONNX model and the spec that the `onnx` method runs it with.

The model's landmarks (x y in [0, 1] crop units) are its one output, so the spec says "coordinates"; the crop,
colour order and normalisation are wflwv's own (wflwv.data.crop). A DEQ is refused: its solver loop runs a
data-dependent number of iterations, which a traced graph would freeze.
"""

from pathlib import Path

import torch

from wflwv import io
from wflwv.data.crop import CROP_EXTRA_SCALE, IMAGENET_MEAN, IMAGENET_STD
from wflwv.errors import WflwvError
from wflwv.inference import is_deq
from wflwv.landmarks import N_LANDMARKS
from wflwv.methods.common import require
from wflwv.models import load_checkpoint
from wflwv.schemes import scheme_for_points


class LandmarksOnly(torch.nn.Module):
    """A wflwv model with its landmarks as the one output, for torch.onnx."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).landmarks


def toml_numbers(values) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def spec_text(model_file: str, size: int) -> str:
    """The onnx method's spec of an exported wflwv model: wflwv's crop, colour order and normalisation, landmarks out."""
    return (f'model = "{model_file}"\ninput_size = {size}\ncrop_scale = {CROP_EXTRA_SCALE}\ncolour = "rgb"\nmean = {toml_numbers(IMAGENET_MEAN)}\n'
            f'std = {toml_numbers(IMAGENET_STD)}\noutput = "coordinates"\nscheme = "{scheme_for_points(N_LANDMARKS).name}"\n')  # fmt: skip


def export_onnx(checkpoint: Path, out: Path) -> Path:
    """Export the checkpoint's model to OUT/<name>.onnx with its spec OUT/<name>.toml (batch axis dynamic); returns the spec."""
    require("onnx", "export-onnx", "onnx")
    model, _ = load_checkpoint(checkpoint, map_location="cpu")
    if is_deq(model):
        raise WflwvError(checkpoint, "a DEQ's solver loop does not export to ONNX (its iteration count depends on the input)")
    name, size = checkpoint.name.split(".")[0], model.args.im_size
    name = checkpoint.parent.name if name == "checkpoint" else name
    out.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out / f"{name}.onnx") as tmp:
        torch.onnx.export(LandmarksOnly(model.eval()), (torch.zeros(1, 3, size, size),), tmp, dynamo=False, input_names=["image"],
                          output_names=["landmarks"], dynamic_axes={"image": {0: "batch"}, "landmarks": {0: "batch"}})  # fmt: skip
    io.save_text(out / f"{name}.toml", spec_text(f"{name}.onnx", size))
    return out / f"{name}.toml"
