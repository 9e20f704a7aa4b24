"""Data shipped inside the package, read through importlib.resources so that any install finds it.

    models/            model and ensemble configs (`--config ldeq_demo` names models/ldeq_demo.toml)
    pipelines/         pipeline files (`wflwv run demo` names pipelines/demo.toml) and their inputs
    box_calibration.json   the MTCNN-to-model box maps fitted on the synthetic world (docs/boxes.md)
    schemes/           the landmark point schemes (wflw98, ibug68, mediapipe478) and their maps (wflwv.schemes)

models/ and pipelines/ live at the repository's top level; pyproject.toml maps them into this package
(wflwv.configs.models, wflwv.configs.pipelines), in the wheel and in an editable install alike.
"""

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

ROOT = resources.files(__name__)
MODELS = resources.files(f"{__name__}.models")
PIPELINES = resources.files(f"{__name__}.pipelines")
BOX_CALIBRATION = ROOT / "box_calibration.json"


def named_or_path(name_or_path: str | Path, folder: Traversable) -> Traversable | Path:
    """A TOML path as it is; a bare name as the shipped `folder/<name>.toml`."""
    path = Path(name_or_path)
    return path if path.suffix == ".toml" else folder / f"{name_or_path}.toml"


def shipped_names(folder: Traversable) -> list[str]:
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))
