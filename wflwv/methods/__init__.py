"""Landmark methods as plugins: frames and boxes in, landmarks in the method's point scheme out.

A method is any object with a `name`, a `scheme` ("wflw98", "ibug68", "mediapipe478") and
`predict(frames, boxes)`. Methods are found by name under the entry-point group `wflwv.methods`
(wflwv's own built-ins are registered there too, in its pyproject.toml), so that a third-party
package adds one by declaring an entry point, without touching wflwv (docs/methods.md); a factory
registered at run time with `register_method` comes first. A built-in whose optional extra is not
installed is refused in one line naming the command that installs it.
"""

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from wflwv.errors import WflwvError

GROUP = "wflwv.methods"
FRAMES_PER_CALL = 64  # consecutive frames predict and bench give a method at a time (label: its --batch-size); memory does not grow with a video


@runtime_checkable
class LandmarkMethod(Protocol):
    name: str  # registry name, e.g. "dlib68"
    scheme: str  # "ibug68", "mediapipe478", "wflw98"

    def predict(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """frames (n, H, W, 3) uint8 RGB of ONE video in order; boxes (n, 4) x1 y1 x2 y2 frame pixels (NaN = no face)
        -> landmarks (n, N, 2) float frame pixels (pixel-centre convention), NaN rows where no face/landmarks."""


_registered: dict[str, Callable[..., LandmarkMethod]] = {}


def register_method(name: str, factory: Callable[..., LandmarkMethod]) -> None:
    """Make `factory(**options)` the method called `name` in this process (before any entry point of that name)."""
    _registered[name] = factory


def _entry_points() -> dict:
    return {point.name: point for point in entry_points(group=GROUP)}


def method_names() -> list[str]:
    """Every method's name: those registered in this process and the entry points of group `wflwv.methods`."""
    return sorted(set(_registered) | set(_entry_points()))


def method_factory(name: str) -> Callable[..., LandmarkMethod]:
    """What makes the method called `name`: registered in this process, else its entry point's object."""
    if name in _registered:
        return _registered[name]
    point = _entry_points().get(name)
    if point is None:
        raise WflwvError(None, f"unknown method {name!r}: known are {', '.join(method_names())}")
    return point.load()


def load_method(name: str, **options) -> LandmarkMethod:
    """The method called `name`, made with `options` (e.g. spec=PATH for "onnx")."""
    method = method_factory(name)(**options)
    if not isinstance(method, LandmarkMethod):
        raise WflwvError(None, f"method {name!r} is a {type(method).__name__}: it needs name, scheme and predict(frames, boxes)")
    return method


def parse_method(text: str) -> tuple[str, dict[str, str]]:
    """`NAME` or `NAME:KEY=VALUE,...` (as the CLI's --method takes it) -> (name, options)."""
    name, _, rest = text.partition(":")
    options = {}
    for pair in filter(None, rest.split(",")):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise WflwvError(None, f"--method {text!r}: options are KEY=VALUE, comma-separated (e.g. onnx:spec=model.toml)")
        options[key.strip()] = value.strip()
    return name, options


def method_label(text: str) -> str:
    """A method's name in tables: NAME, then the stem of each option value, e.g. "onnx hrnet_demo" (letters, digits and inner spaces, as method names go)."""
    name, options = parse_method(text)
    return " ".join([name, *(Path(value).stem for value in options.values())])


def method_from_text(text: str) -> LandmarkMethod:
    """The method of the CLI's --method NAME[:KEY=VALUE,...]."""
    name, options = parse_method(text)
    return load_method(name, **options)
