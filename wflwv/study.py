"""A study: every demo model trained from several seeds and benchmarked, its figures as mean ± sd over seeds.

One training run is one draw: the seed (and the CPU's kernels) decide whether an LDEQ has one fixed
point per frame, and so what RwR does. `wflwv study` trains each config once per seed with
wflwv.train, benches each seed's models with wflwv.bench, and writes under OUT:

- seeds/<seed>/<config>/: the training run; seeds/<seed>/bench/: that seed's leaderboards;
- video_study.* and still_study.*: each leaderboard row (model, method) as mean and standard
  deviation over the seeds, shown as "mean ± sd";
- rwr_study.*: RwR's effect in every seed, each RwR row against the same model's cold start: the
  relative change of NMF and NME on every split;
- rwr_vs_filter.*: every seed's RwR rows against the same model's best filter setting (the bench's
  paired bootstrap difference over videos, with its interval and P(difference < 0));
- rwr_over_seeds.*: both of these as the mean over the seeds with its t interval, per model and RwR row;
- equilibrium_study.*: every seed's LDEQ measured by wflwv.equilibrium.diagnose on the videos: the
  spread between cold and warm fixed points and the contraction, per split (measured again on a
  rerun where the table on disk is of another checkpoint, pairs count or diagnose);
- manifest.parquet: one row per seed with its checkpoints, the seconds its training took (its runs'
  epochs, as their histories record them, whichever study trained them), the seconds its bench took
  in the run that wrote the row, and its key.

A seed's key is a digest of everything its row depends on: the seed, each config as training reads
it (the [train] settings it leaves at their defaults included), the epochs, every file of the world's
stills/ and videos/, and the bench settings. A seed whose key is in the manifest is skipped on a
rerun; any other goes through training and bench again, which resume where they left off and redo
only what changed (a changed config is refused by training as another run: --force). --force
redoes everything.
"""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wflwv import io
from wflwv.bench import BenchSettings, run_bench
from wflwv.equilibrium import CONVERGED_ITERS, PLAIN_ITERS, diagnose
from wflwv.errors import WflwvError
from wflwv.models import CHECKPOINT_NAME, load_checkpoint, load_config
from wflwv.models.ldeq import LDEQ
from wflwv.report import Leaderboard, best_method, read_leaderboard, video_splits
from wflwv.train import TrainSettings, train, training_seconds
from wflwv.uncertainty import LEVEL, t_interval

MANIFEST_NAME = "manifest.parquet"
EQUILIBRIUM_NAME = "equilibrium.parquet"  # in a training run's folder: diagnose's table for an LDEQ


MAX_SEED = 2**32 - 1  # torch's and numpy's seeds fit in 32 bits; larger ones overflow the manifest's int64 too


@dataclass(frozen=True)
class StudySettings:
    seeds: tuple[int, ...] = (0, 1, 2)
    configs: tuple[str, ...] = ("ldeq_demo", "hrnet_demo")
    epochs: int | None = None  # None: each config's own
    bench: BenchSettings = BenchSettings()
    diagnose_pairs: int = 8  # pairs of consecutive frames per video for the equilibrium table


def run_study(world: Path, out: Path, settings: StudySettings = StudySettings(), force: bool = False) -> dict[str, Leaderboard]:
    """Train and bench every seed not done yet, then write the tables over seeds; returns them by name."""
    stills, videos = world / "stills", world / "videos"
    repeated = next((seed for seed in settings.seeds if settings.seeds.count(seed) > 1), None)
    if repeated is not None or not all(0 <= seed <= MAX_SEED for seed in settings.seeds):
        raise WflwvError(None, f"seeds must be distinct integers from 0 to {MAX_SEED}: {repeated if repeated is not None else max(settings.seeds)} is not")
    for needed in (stills, videos):
        if not needed.is_dir():
            raise WflwvError(needed, "a study needs a world with stills/ and videos/ (wflwv synth)")
    manifest_path = out / MANIFEST_NAME
    rows = pd.read_parquet(manifest_path).to_dict("records") if manifest_path.exists() else []
    inputs = study_inputs(world, settings)
    for seed in settings.seeds:
        key = io.digest({"seed": seed} | inputs)
        if not force and any(row.get("key") == key for row in rows):
            continue
        rows = [row for row in rows if row["seed"] != seed] + [study_seed(stills, videos, out / "seeds" / str(seed), seed, settings, force) | {"key": key}]
        io.save_parquet(manifest_path, pd.DataFrame(rows))
    diagnose_ldeqs(videos, out, settings)
    folders = [out / "seeds" / str(seed) / "bench" for seed in settings.seeds]
    videos_table = seed_tables(folders, "video_leaderboard")
    tables = {
        "video_study": over_seeds(videos_table, ["model", "method", "curve"]),
        "still_study": over_seeds(seed_tables(folders, "still_leaderboard"), ["model"]),
        "rwr_study": rwr_effect(videos_table),
        "rwr_vs_filter": rwr_against_filters(videos_table),
        "equilibrium_study": equilibrium_table(out, settings),
    }
    tables["rwr_over_seeds"] = rwr_over_seeds(tables["rwr_study"], tables["rwr_vs_filter"])
    per_seed = {"video_study": "video_leaderboard", "still_study": "still_leaderboard"}
    boards = {name: study_board(name, table, settings.bench, read_leaderboard(folders[0] / f"{per_seed[name]}.parquet").columns if name in per_seed else None)
              for name, table in tables.items()}
    for board in boards.values():
        board.write(out)
    return boards


def study_inputs(world: Path, settings: StudySettings) -> dict:
    """All but the seed of what a seed's manifest row depends on (see the module's docstring), the world as a digest."""
    configs = {name: load_config(name) for name in settings.configs}
    files = sorted(path for folder in ("stills", "videos") for path in (world / folder).rglob("*") if path.is_file())
    return {
        "epochs": settings.epochs, "bench": dataclasses.asdict(settings.bench),
        "configs": [config | {"train": dataclasses.asdict(TrainSettings.from_config(config, source=name))} for name, config in configs.items()],
        "world": io.digest([[str(path.relative_to(world)), path] for path in files]),
    }


def study_seed(stills: Path, videos: Path, folder: Path, seed: int, settings: StudySettings, force: bool) -> dict:
    """Train every config with `seed` and bench them together; the seed's manifest row."""
    checkpoints = [train(stills, config, folder / Path(config).stem, settings.epochs, seed, force) for config in settings.configs]
    start = time.perf_counter()
    run_bench(checkpoints, folder / "bench", videos=videos, stills=stills, settings=settings.bench, force=force)
    return {"seed": seed, "checkpoints": [str(c) for c in checkpoints], "train_seconds": sum(training_seconds(c.parent) for c in checkpoints),
            "bench_seconds": time.perf_counter() - start}


def diagnose_ldeqs(videos: Path, out: Path, settings: StudySettings) -> None:
    """Every seed's LDEQs measured by wflwv.equilibrium.diagnose, except where the table on disk is of the same
    checkpoint, pairs and solver caps (its key column)."""
    for seed in settings.seeds:
        for config in settings.configs:
            run = out / "seeds" / str(seed) / Path(config).stem
            checkpoint, path = run / CHECKPOINT_NAME, run / EQUILIBRIUM_NAME
            key = io.digest({"checkpoint": checkpoint, "pairs": settings.diagnose_pairs, "iterations": [CONVERGED_ITERS, PLAIN_ITERS]})
            if not checkpoint.is_file() or (path.is_file() and key in set(pd.read_parquet(path).get("key", []))):
                continue
            model, _ = load_checkpoint(checkpoint)
            if isinstance(model, LDEQ):
                io.save_parquet(path, diagnose(videos, model, settings.diagnose_pairs).assign(key=key))


def seed_tables(folders: list[Path], name: str) -> pd.DataFrame:
    """One leaderboard of every seed's bench, stacked with a seed column."""
    return pd.concat([read_leaderboard(f / f"{name}.parquet").table.assign(seed=int(f.parent.name)) for f in folders], ignore_index=True)


def over_seeds(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every numeric column as <column>_mean and <column>_sd (sample standard deviation) over the seeds, per row of `keys`."""
    numeric = [c for c in table.select_dtypes("number").columns if c != "seed"]
    groups = table.groupby(keys, sort=False)
    stats = groups[numeric].agg(["mean", "std"])
    stats.columns = [f"{column}_{'sd' if stat == 'std' else stat}" for column, stat in stats.columns]
    return stats.reset_index().assign(seeds=groups["seed"].nunique().to_numpy())


def rwr_effect(videos: pd.DataFrame) -> pd.DataFrame:
    """Per seed, model and RwR row: the relative change (%) of NMF and NME on every split against the model's cold start."""
    splits = video_splits(videos)
    cold = videos[videos["method"] == "raw"].set_index(["seed", "model"])
    rwr = videos[videos["curve"] == "rwr"]
    rows = []
    for _, row in rwr.iterrows():
        base = cold.loc[(row["seed"], row["model"])]
        changes = {f"{m}_{s}_change": percent_change(row[f"{m}_{s}"], base[f"{m}_{s}"]) for s in splits for m in ("nmf", "nme")}
        rows.append({"seed": row["seed"], "model": row["model"], "method": row["method"]} | changes | {"solver_iters_per_frame": row["solver_iters_per_frame"]})
    return pd.DataFrame(rows)


def rwr_against_filters(videos: pd.DataFrame) -> pd.DataFrame:
    """Per seed, every RwR row against its model's best filter setting (the lowest NME + NMF on the first split, as the
    bench picks it): the filter's name and the bench's paired differences on every split, with intervals and P(< 0)."""
    first = video_splits(videos)[0]
    differences = [c for c in videos.columns if "_vs_filter" in c]
    rows = []
    for (seed, model), table in videos.groupby(["seed", "model"], sort=False):
        filtered = table[~table["curve"].isin(["raw", "rwr"])]
        if not len(filtered) or not (table["curve"] == "rwr").any():
            continue
        best = best_method(filtered.assign(curve="filter"), model, "filter", first)
        rows.append(table[table["curve"] == "rwr"][["seed", "model", "method", *differences]].assign(best_filter=best))
    columns = ["seed", "model", "method", "best_filter", *differences]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def rwr_over_seeds(effect: pd.DataFrame, against_filter: pd.DataFrame) -> pd.DataFrame:
    """Per model and RwR row: the mean over seeds of each change against the cold start (rwr_effect) and each paired
    difference against the best filter (rwr_against_filters), with `_low` and `_high`, its t interval over the seeds."""
    differences = [c for c in against_filter.columns if c.endswith("_vs_filter")]
    per_seed = effect.merge(against_filter[["seed", "model", "method", *differences]], on=["seed", "model", "method"], how="left")
    figures = [c for c in per_seed.columns if c.endswith("_change")] + differences
    rows = []
    for (model, method), table in per_seed.groupby(["model", "method"], sort=False):
        interval = t_interval(table[figures].to_numpy(dtype=float).T)
        rows.append({"model": model, "method": method, "seeds": len(table)}
                    | {f"{figure}{part}": values[k] for k, figure in enumerate(figures) for part, values in (("", interval.estimate), ("_low", interval.low), ("_high", interval.high))})
    return pd.DataFrame(rows, columns=["model", "method", "seeds", *(f"{f}{p}" for f in figures for p in ("", "_low", "_high"))])


def equilibrium_table(out: Path, settings: StudySettings) -> pd.DataFrame:
    """Every seed's and LDEQ config's diagnose table, stacked with seed and model columns."""
    tables = [pd.read_parquet(path).assign(seed=seed, model=Path(config).stem)
              for seed in settings.seeds for config in settings.configs
              if (path := out / "seeds" / str(seed) / Path(config).stem / EQUILIBRIUM_NAME).is_file()]
    columns = ["seed", "model", "split", "pairs", "contraction", "mean_shift", "mean_spread", "max_spread", "re_solved", "unconverged"]
    return pd.concat(tables, ignore_index=True).reindex(columns=columns) if tables else pd.DataFrame(columns=columns)


def percent_change(value: float, base: float) -> float:
    """100 * (value / base - 1); NaN where the base is 0 (a split whose cold start does not flicker has no relative change)."""
    return 100 * (value / base - 1) if base != 0 else float("nan")


def study_board(name: str, table: pd.DataFrame, bench: BenchSettings, shown: dict[str, tuple[str, str]] | None = None) -> Leaderboard:
    """A study table as a leaderboard: key columns as they are, <x>_mean with <x>_sd as "mean ± sd" (of them only those in
    `shown`, a per-seed leaderboard's columns, when given; the parquet keeps all), changes in %."""
    columns = {}
    for column in table.columns:
        if column.endswith(("_sd", "_low", "_high")):  # shown beside their figure
            continue
        if column.endswith("_mean"):
            base = column.removesuffix("_mean")
            if shown is None or base in shown:
                columns[base] = (shown[base][0] if shown else base.replace("_", " "), "")
        elif column.endswith("_change"):
            columns[column] = (column.removesuffix("_change").replace("_", " ") + " change %", "+.1f")
        elif column.endswith("_vs_filter"):  # shown with its _low, _high (and _p) as "d [low, high] P<0 p"
            metric, split = column.removesuffix("_vs_filter").split("_")
            columns[column] = (f"{metric.upper()} {split} - best filter", ".3f")
        elif "_vs_filter_" in column:
            continue
        elif column in ("contraction", "mean_shift", "mean_spread", "max_spread"):
            columns[column] = (column.replace("_", " "), ".3f")
        elif column == "solver_iters_per_frame":
            columns[column] = ("solver iters/frame", ".2f")
        else:
            columns[column] = (column, "")
    shown = table.assign(**{base: mean_sd(table[f"{base}_mean"], table[f"{base}_sd"]) for base in [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]})
    interval = SEED_INTERVAL_NOTE if name == "rwr_over_seeds" else None
    return Leaderboard(name, shown, columns, bench.norm, None if name in ("still_study", "equilibrium_study") else bench.nmf_definition, STUDY_NOTES[name], interval)


def mean_sd(means: pd.Series, sds: pd.Series) -> pd.Series:
    """"mean ± sd" with three decimals; the sd is blank for a single seed."""
    return pd.Series([f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}" for m, s in zip(means, sds)], index=means.index)


SEED_INTERVAL_NOTE = f"[low, high]: {100 * LEVEL:.0f}% t interval of the mean over the training seeds (seeds column)."
STUDY_NOTES = {
    "video_study": "Mean ± standard deviation over the training seeds (seeds column).",
    "still_study": "Mean ± standard deviation over the training seeds (seeds column).",
    "rwr_study": "RwR against the same model's cold start, per training seed: relative change in %, negative is lower.",
    "rwr_vs_filter": "Each RwR row against its model's best filter setting in that seed (lowest NME + NMF on the first split): the paired bootstrap "
                     "difference over videos (negative: RwR lower), its 95% interval and P<0, the share of resamples in which RwR is lower.",
    "rwr_over_seeds": "Each RwR row's change against its model's cold start (%, as in rwr_study) and its difference from the model's best filter "
                      "(as in rwr_vs_filter), as the mean over the training seeds.",
    "equilibrium_study": "wflwv diagnose per training seed: spread, NME x100 between a frame's fixed points from z0 = 0 and from the previous frame's "
                         "(0: one fixed point); shift, between consecutive frames' fixed points; contraction, the share of that gap one iteration leaves; "
                         f"re_solved, pairs where the model's solver did not converge in {CONVERGED_ITERS} iterations and plain iteration did in "
                         f"{PLAIN_ITERS}; unconverged, pairs where a solve of frame n converged by neither.",
}
