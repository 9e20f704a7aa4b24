"""Landmark methods as plugins (wflwv.methods): the registry, the ONNX path against torch, each real model on a real frame."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import face_video, run_main
from wflwv.errors import WflwvError
from wflwv.inference import VideoStream, predict_videos
from wflwv.methods import LandmarkMethod, load_method, method_names, register_method
from wflwv.models import create_model, load_config

BUILT_INS = ("dlib68", "faceapi68", "mediapipe478", "onnx")


def test_built_ins_are_entry_points():
    assert set(BUILT_INS) <= set(method_names())


def test_an_unknown_method_is_refused_naming_the_known_ones():
    with pytest.raises(WflwvError, match="unknown method 'nope': known are .*dlib68"):
        load_method("nope")


def test_a_missing_extra_is_refused_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(WflwvError, match=r"^onnx: needs the optional extra 'onnx' .*: pip install 'wflwv\[onnx\]'$"):
        load_method("onnx", spec="any.toml")


class HeatmapsOnly(torch.nn.Module):
    """A wflwv model with one output for torch.onnx: its heatmaps or its landmarks in [0, 1] crop units."""

    def __init__(self, model: torch.nn.Module, output: str):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(images), self.output)


SPEC = """model = "{model}"
input_size = {size}
crop_scale = 1.2
colour = "rgb"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
output = "{output}"
scheme = "wflw98"
"""


@pytest.fixture(scope="module")
def demo_hrnet():
    torch.manual_seed(0)
    return create_model(load_config("hrnet_demo")).eval()


def export(model: torch.nn.Module, folder: Path, output: str, spec_size: int | None = None) -> Path:
    """The model exported with torch.onnx (batch axis dynamic) and its spec; returns the spec's path."""
    size = model.args.im_size
    torch.onnx.export(HeatmapsOnly(model, output), (torch.zeros(1, 3, size, size),), folder / f"{output}.onnx", dynamo=False, input_names=["image"],
                      dynamic_axes={"image": {0: "batch"}})  # fmt: skip
    spec = folder / f"{output}.toml"
    spec.write_text(SPEC.format(model=f"{output}.onnx", size=spec_size or size, output="heatmaps" if output == "heatmaps" else "coordinates"))
    return spec


@pytest.mark.parametrize("output", ["heatmaps", "landmarks"])
def test_onnx_export_of_the_demo_hrnet_gives_the_torch_models_landmarks(demo_hrnet, tmp_path, output):
    frames, _, boxes = face_video(5, seed=0)
    boxes[2] = np.nan  # no face on one frame
    method = load_method("onnx", spec=export(demo_hrnet, tmp_path, output))
    points = method.predict(frames, boxes)
    faces = [0, 1, 3, 4]
    (torch_points,) = predict_videos(demo_hrnet, [VideoStream("v", frames[faces], boxes[faces])], slots=1, warm_start=False, prefetch=False)
    assert points.shape == (5, 98, 2) and np.isnan(points[2]).all()
    np.testing.assert_allclose(points[faces], torch_points.landmarks, atol=2e-4)  # frame pixels (measured: 4e-5); faces span ~40 px
    assert np.abs(np.diff(points[faces], axis=0)).max() > 0.1  # the frames differ, and so do their points


def test_an_onnx_spec_that_does_not_match_the_model_is_refused_naming_the_spec(demo_hrnet, tmp_path, capsys):
    spec = export(demo_hrnet, tmp_path, "heatmaps", spec_size=128)
    with pytest.raises(WflwvError, match=r"heatmaps.toml: input_size 128 does not match the model's input 'image' of shape \['batch', 3, 64, 64\]"):
        load_method("onnx", spec=spec)
