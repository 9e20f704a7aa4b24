"""Landmark point schemes as data: WFLW's 98 points, iBUG's 68, MediaPipe's 478, and the maps between them.

Each scheme is a TOML file of wflwv/configs/schemes/ (its comments cite the conventions and tables): its
face regions, normalisations, flip permutation, the subsets papers report, and the maps to other schemes.
Point lists there are comma-separated 0-based indices and inclusive ranges: "3", "0-16", "16-0" (descending),
"0-32/2" (every other point); in a map, "a+b" is the midpoint of two source points.
"""

import functools
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wflwv.configs import ROOT
from wflwv.errors import WflwvError

SCHEMES = ROOT / "schemes"


@dataclass(frozen=True)
class Scheme:
    name: str  # "ibug68"
    n_points: int  # 68
    description: str
    regions: dict[str, np.ndarray]  # face regions for per-region flicker
    flip: np.ndarray | None  # horizontal-flip permutation: point i of the mirrored face is point flip[i]
    normalisations: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> the two point groups whose centroids' distance it is
    subsets: dict[str, np.ndarray]  # "49" -> the points that subset scores
    maps: dict[str, np.ndarray]  # target scheme -> (target points, k) source indices averaged into each target point


def parse_points(text: str, what: str) -> list[list[int]]:
    """The groups a point list names: "0-2, 5+6" -> [[0], [1], [2], [5, 6]]."""
    if not isinstance(text, str):
        raise WflwvError(None, f"{what}: expected a point list in a string, as \"0-16\", got {text!r}")
    groups = []
    for item in text.replace("\n", " ").split(","):
        item = item.strip()
        try:
            if "+" in item:
                groups.append([int(part) for part in item.split("+")])
                continue
            span, _, step = item.partition("/")
            first, _, last = span.partition("-")
            first, last, step = int(first), int(last or first), int(step or 1)
        except ValueError:
            raise WflwvError(None, f"{what}: cannot read {item!r} as a point, range or sum") from None
        direction = 1 if last >= first else -1
        groups.extend([index] for index in range(first, last + direction, direction * step))
    return groups


def _indices(text: str, what: str) -> np.ndarray:
    groups = parse_points(text, what)
    if any(len(group) != 1 for group in groups):
        raise WflwvError(None, f"{what}: a sum 'a+b' is allowed only in a map")
    return np.array([group[0] for group in groups], dtype=int)


def _map_table(text: str, what: str) -> np.ndarray:
    """(target points, k) source indices averaged into each target point; a group of fewer points repeats
    itself up to k, which leaves its mean unchanged."""
    groups = parse_points(text, what)
    k = max(len(group) for group in groups)
    if any(k % len(group) for group in groups):
        raise WflwvError(None, f"{what}: every sum must have the same number of points, or one that divides it")
    return np.array([group * (k // len(group)) for group in groups], dtype=int)


REQUIRED = {"name": (str, "a string"), "n_points": (int, "a whole number"), "description": (str, "a string"),
            "normalisations": (dict, "a table")}
TABLES = ("regions", "flip", "subsets", "to")  # optional tables of point lists (a map's under "points")


def _check_layout(data: dict, source: str) -> None:
    """The keys and types a scheme file must have, before any point list is read."""
    for key, (kind, what) in REQUIRED.items():
        if key not in data:
            raise WflwvError(None, f"{source}: no {key!r} (a scheme file gives {', '.join(REQUIRED)})")
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise WflwvError(None, f"{source}: {key!r} must be {what}, got {data[key]!r}")
    if data["n_points"] < 1:
        raise WflwvError(None, f"{source}: 'n_points' must be at least 1, got {data['n_points']}")
    for table in TABLES:
        if not isinstance(data.get(table, {}), dict):
            raise WflwvError(None, f"{source}: {table!r} must be a table, got {data[table]!r}")
    if "interocular" not in data["normalisations"]:
        raise WflwvError(None, f"{source}: normalisations has no 'interocular' (the default normaliser)")
    for name, pair in data["normalisations"].items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise WflwvError(None, f"{source}: normalisation {name} must be two point lists, as [\"60\", \"72\"]")
    for target, spec in data.get("to", {}).items():
        if not isinstance(spec, dict) or "points" not in spec:
            raise WflwvError(None, f"{source}: the map to {target} must be a table with a 'points' list")


def _scheme(data: dict, source: str) -> Scheme:
    _check_layout(data, source)
    n = data["n_points"]

    def points(text: str, what: str) -> np.ndarray:
        indices = _indices(text, f"{source}: {what}")
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise WflwvError(None, f"{source}: {what} names a point outside 0-{n - 1}")
        return indices

    flip = data.get("flip", {}).get("permutation")
    flip = None if flip is None else points(flip, "flip")
    if flip is not None and sorted(flip) != list(range(n)):
        raise WflwvError(None, f"{source}: flip is not a permutation of the {n} points")
    return Scheme(
        name=data["name"],
        n_points=n,
        description=data["description"],
        regions={name: points(text, f"region {name}") for name, text in data.get("regions", {}).items()},
        flip=flip,
        normalisations={
            name: (points(a, f"normalisation {name}"), points(b, f"normalisation {name}"))
            for name, (a, b) in data["normalisations"].items()
        },
        subsets={name: points(text, f"subset {name}") for name, text in data.get("subsets", {}).items()},
        maps={target: _map_table(spec["points"], f"{source}: map to {target}") for target, spec in data.get("to", {}).items()},
    )


@functools.cache
def _all_schemes() -> dict[str, Scheme]:
    schemes = {}
    for entry in sorted(SCHEMES.iterdir(), key=lambda entry: entry.name):
        if entry.name.endswith(".toml"):
            try:
                table = tomllib.loads(entry.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                raise WflwvError(entry, f"not a scheme file: invalid TOML ({error})") from None
            scheme = _scheme(table, entry.name)
            schemes[scheme.name] = scheme
    for scheme in schemes.values():
        for target, table in scheme.maps.items():
            if target not in schemes or len(table) != schemes[target].n_points or table.max() >= scheme.n_points:
                raise WflwvError(None, f"{scheme.name}.toml: its map to {target} does not fit the two schemes")
    return schemes


def scheme_names() -> list[str]:
    return sorted(_all_schemes())


def point_counts() -> list[int]:
    """The point count of each scheme, ascending."""
    return sorted(scheme.n_points for scheme in _all_schemes().values())


def get_scheme(name: str) -> Scheme:
    schemes = _all_schemes()
    if name not in schemes:
        raise WflwvError(None, f"unknown point scheme {name!r}, expected one of {', '.join(sorted(schemes))}")
    return schemes[name]


def scheme_for_points(n_points: int) -> Scheme:
    """The scheme of landmarks with this many points."""
    for scheme in _all_schemes().values():
        if scheme.n_points == n_points:
            return scheme
    counts = ", ".join(f"{s.n_points} ({s.name})" for s in _all_schemes().values())
    raise WflwvError(None, f"no point scheme has {n_points} points, expected one of {counts}")


def convertible(source: str, target: str) -> bool:
    return source == target or target in get_scheme(source).maps


def convert(points: np.ndarray, source: str, target: str) -> np.ndarray:
    """Landmarks (..., N_source, D) in scheme `source` as (..., N_target, D) in `target` (NaN stays NaN); D is
    2 for image points, 3 for the synthetic world's head-frame ones."""
    scheme = get_scheme(source)
    get_scheme(target)
    points = np.asarray(points, dtype=float)
    if points.ndim < 2 or points.shape[-2] != scheme.n_points:
        raise WflwvError(None, f"{source} landmarks have shape {points.shape}, expected (..., {scheme.n_points}, 2)")
    if source == target:
        return points
    if target not in scheme.maps:
        raise WflwvError(None, f"no map from point scheme {source} to {target}")
    return points[..., scheme.maps[target], :].mean(axis=-2)


def common_scheme(names: Iterable[str]) -> str:
    """The scheme all of `names` convert to; of several, the one with the most points (it keeps the most)."""
    names = set(names)
    if not names:
        raise WflwvError(None, "no point schemes to find a common one of")
    common = [scheme for scheme in _all_schemes().values() if all(convertible(name, scheme.name) for name in names)]
    if not common:
        raise WflwvError(None, f"point schemes {', '.join(sorted(names))} have no common scheme to score on")
    return max(common, key=lambda scheme: scheme.n_points).name


def distance(points: np.ndarray, scheme: Scheme, normalisation: str) -> np.ndarray:
    """Per-face distance (...) between the centroids of a normalisation's two point groups, for (..., N, 2)."""
    if normalisation not in scheme.normalisations:
        raise WflwvError(None, f"point scheme {scheme.name} has no {normalisation!r} normalisation")
    a, b = scheme.normalisations[normalisation]
    return np.linalg.norm(points[..., a, :].mean(axis=-2) - points[..., b, :].mean(axis=-2), axis=-1)


def zero_interocular(points: np.ndarray, scheme: Scheme) -> np.ndarray:
    """Which faces (..., N, 2) have no inter-ocular distance to normalise their errors by."""
    return distance(points, scheme, "interocular") == 0


def normalisation_points(scheme: Scheme, normalisation: str, first: int = 0) -> str:
    """'points 60 and 72': a normalisation's two point groups as an error names them, numbered from `first`."""
    a, b = ("+".join(str(int(point) + first) for point in group) for group in scheme.normalisations[normalisation])
    return f"points {a} and {b}"


def flip_horizontally(points: np.ndarray, width: float, scheme: Scheme) -> np.ndarray:
    """Landmarks (..., N, 2) of the mirror image of an image `width` wide (pixel-centre convention)."""
    if scheme.flip is None:
        raise WflwvError(None, f"point scheme {scheme.name} defines no flip permutation")
    flipped = points[..., scheme.flip, :].copy()
    flipped[..., 0] = width - 1 - flipped[..., 0]
    return flipped
