"""Ensembles as data: a TOML file (shipped in models/, or a path) listing member model configs and their training seeds.

    [[member]]
    config = "unet_demo"   # a model config name (models/unet_demo.toml) or a path to one
    seeds = [1, 2]         # one member per seed: `wflwv train --config unet_demo --seed 1`, ...

The seed is the member's `wflwv train --seed`: it draws both its initial weights and its augmentations.
"""

import tomllib
from pathlib import Path

from wflwv.configs import MODELS, named_or_path
from wflwv.errors import WflwvError
from wflwv.models import load_config


def load_ensemble(name_or_path: str | Path) -> list[tuple[str, int]]:
    """The members of an ensemble config ("ensemble_demo", shipped in models/, or a path): (model config, seed) pairs.

    Every member's model config is loaded (and so checked); a pair listed twice is an error.
    """
    path = named_or_path(name_or_path, MODELS)
    if not path.is_file():
        raise WflwvError(path, "no such ensemble config")
    try:
        groups = tomllib.loads(path.read_text()).get("member")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(path, f"invalid TOML: {error}") from None
    if not isinstance(groups, list) or not groups:
        raise WflwvError(path, "an ensemble config lists its members as [[member]] tables with `config` and `seeds`")
    members = []
    for number, group in enumerate(groups, start=1):
        config, seeds = group.get("config"), group.get("seeds")
        if not isinstance(config, str) or not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise WflwvError(path, f"member table {number} needs `config` (a model config name) and `seeds` (a list of integers >= 0)")
        load_config(config)
        members += [(config, seed) for seed in seeds]
    repeated = sorted({member for member in members if members.count(member) > 1})
    if repeated:
        raise WflwvError(path, f"member {repeated[0][0]} with seed {repeated[0][1]} is listed twice")
    return members
