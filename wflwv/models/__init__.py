"""Landmark models: configs as data, a family registry, checkpoints in the authors' released format.

A model config is a TOML file shipped in the package (models/) or a user's own path: `family` names a registered
builder and `[args]` holds its options under the release's names; a `[train]` table, if any, is
the training loop's. A checkpoint is a torch.save'd dict with `args` (an argparse.Namespace),
`state_dict`, and extra keys such as the optimizer state; the authors' checkpoints load as they are.
"""

import argparse
import pickle
import re
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from wflwv.configs import MODELS, named_or_path, shipped_names
from wflwv.errors import WflwvError
from wflwv.io import atomic_path
from wflwv.models.heatmaps import HeatmapOutput, LandmarkOutput
from wflwv.models.hourglass import StackedHourglass
from wflwv.models.hrnet import HRNet
from wflwv.models.ldeq import LDEQ, LDEQOutput
from wflwv.models.regression import Regression
from wflwv.models.stats import forward_cost, multiply_adds, param_count
from wflwv.models.unet import UNet

DEFAULT_FAMILY = "ldeq"  # the released checkpoints carry no family: they are all LDEQs
SAFE_GLOBALS = [argparse.Namespace]  # all a released checkpoint needs beyond tensors and containers

_families: dict[str, Callable[[argparse.Namespace], nn.Module]] = {}


def register_family(name: str, builder: Callable[[argparse.Namespace], nn.Module]) -> None:
    """Make `family = name` in a config build its model with builder(args).

    The builder is the model's class, so that a checkpoint can record the family of a model.
    """
    _families[name] = builder


register_family("ldeq", LDEQ)
register_family("unet", UNet)
register_family("hrnet", HRNet)
register_family("hourglass", StackedHourglass)
register_family("regression", Regression)


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """Read a model config: a name such as "ldeq_demo" (shipped in models/) or a path to a TOML file.

    The config is checked by building its model on the meta device (no memory, no weights).
    """
    path = named_or_path(name_or_path, MODELS)
    if not path.is_file():
        raise WflwvError(path, f"no such model config (known names: {', '.join(shipped_names(MODELS))})")
    try:
        config = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(path, f"invalid TOML: {error}") from None
    if not isinstance(config.get("args"), dict):
        raise WflwvError(path, "config has no [args] table")
    module = sys.modules[_families[config["family"]].__module__] if config.get("family") in _families else None
    known = getattr(module, "OPTIONS", None) and (*module.OPTIONS, *getattr(module, "OPTIONAL", ()))
    unknown = [key for key in config["args"] if known is not None and key not in known]
    if unknown:
        raise WflwvError(path, f"[args] {unknown[0]}: not an option of the {config['family']} family (known: {', '.join(known)})")
    with torch.device("meta"):
        _build(config.get("family"), model_args(config), path)
    return config


def model_args(config: dict[str, Any]) -> argparse.Namespace:
    return argparse.Namespace(**config["args"])


def create_model(config: dict[str, Any]) -> nn.Module:
    return _build(config.get("family"), model_args(config), None)


CHECKPOINT_NAME = "checkpoint.pth.tar"  # what `wflwv train --out RUN` writes in the run folder


def save_checkpoint(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
    """Write {"args", "state_dict", "family", **extra} atomically: the released format plus a family key."""
    checkpoint = {"args": model.args, "state_dict": model.state_dict(), "family": _family_of(model), **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's model from its args and load its weights; returns (model, checkpoint dict)."""
    checkpoint = read_checkpoint(path, map_location)
    model = _build(checkpoint.get("family", DEFAULT_FAMILY), checkpoint["args"], path)
    load_weights(model, checkpoint, path)
    return model.to(map_location), checkpoint


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict with `args` and `state_dict`.

    Unpickling is restricted to tensors, containers and argparse.Namespace, so a file that would run
    code on loading is refused.
    """
    if not Path(path).is_file():
        raise WflwvError(path, "no such checkpoint file")
    try:
        # torch warns on stderr about a raw pickle before failing on it: the error below says it in one line
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a damaged file can fail inside the unpickler in any way
        refused = re.search(r"GLOBAL ([\w.]+)", str(error)) if isinstance(error, pickle.UnpicklingError) else None
        if refused:
            raise WflwvError(path, f"refused to unpickle {refused.group(1)}: a checkpoint holds only tensors, containers and argparse.Namespace") from None
        raise WflwvError(path, f"not a PyTorch checkpoint ({type(error).__name__})") from None
    if not (isinstance(checkpoint, dict) and isinstance(checkpoint.get("args"), argparse.Namespace) and isinstance(checkpoint.get("state_dict"), dict)):
        raise WflwvError(path, "not a model checkpoint: expected a dict with 'args' (argparse.Namespace) and 'state_dict'")
    return checkpoint


def load_weights(model: nn.Module, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint's weights into a model built elsewhere (e.g. from a config); a weight that
    does not fit is named."""
    _check_state_dict(model, checkpoint["state_dict"], path)
    model.load_state_dict(checkpoint["state_dict"])


def _build(family: str | None, args: argparse.Namespace, source: str | Path | None) -> nn.Module:
    if family not in _families:
        raise WflwvError(source, f"unknown model family {family!r} (known: {', '.join(sorted(_families))})")
    try:
        return _families[family](args)
    except ValueError as error:
        raise WflwvError(source, f"invalid {family} args: {error}") from None


def _family_of(model: nn.Module) -> str:
    for name, builder in _families.items():
        if type(model) is builder:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model family")


def _check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise WflwvError naming the first key that does not fit the model's architecture."""
    family, expected_state = _family_of(model), model.state_dict()
    for key, expected in expected_state.items():
        if key not in state_dict:
            raise WflwvError(path, f"weights do not fit the {family} architecture: missing key {key!r}")
        found = state_dict[key]
        if not isinstance(found, torch.Tensor) or found.shape != expected.shape:
            found_shape = tuple(found.shape) if isinstance(found, torch.Tensor) else type(found).__name__
            raise WflwvError(path, f"weights do not fit the {family} architecture: {key!r} has shape {found_shape}, the model's is {tuple(expected.shape)}")
    unexpected = [key for key in state_dict if key not in expected_state]
    if unexpected:
        raise WflwvError(path, f"weights do not fit the {family} architecture: unexpected key {unexpected[0]!r}")


__all__ = [
    "HRNet", "HeatmapOutput", "LDEQ", "LDEQOutput", "LandmarkOutput", "Regression", "StackedHourglass", "UNet",
    "create_model", "forward_cost", "load_checkpoint", "load_config", "load_weights", "model_args", "multiply_adds", "param_count",
    "read_checkpoint", "register_family", "save_checkpoint",
]  # fmt: skip
