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
- with world seeds (run_worlds_study), worlds/<world seed>/: the world `wflwv synth` renders (data/) and that world's study
  (seeds/, manifest.parquet); the tables above, in OUT, are then over every run, one per world and training seed, with a
  world column, and their intervals over the runs;
- with an ablation (StudySettings.ablation), configs/: the variants of a config's equilibrium terms that are studied
  (ablation_configs), and ablation.*: one table of them, every figure with its t interval over the runs;
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
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from wflwv import io
from wflwv.bench import BenchSettings, run_bench
from wflwv.equilibrium import CONVERGED_ITERS, PLAIN_ITERS, diagnose
from wflwv.errors import WflwvError
from wflwv.models import CHECKPOINT_NAME, load_checkpoint, load_config
from wflwv.models.ldeq import LDEQ
from wflwv.report import Leaderboard, best_method, read_leaderboard, video_splits
from wflwv.synth import Preset, generate
from wflwv.train import TrainSettings, train, trained_part, training_seconds, warm_solve_on
from wflwv.uncertainty import LEVEL, t_interval

MANIFEST_NAME = "manifest.parquet"
EQUILIBRIUM_NAME = "equilibrium.parquet"  # in a training run's folder: diagnose's table for an LDEQ
HELD_OUT_PRESET = "heldout"  # the synth preset of a study's worlds (--world-seeds): enough hard videos that one cannot move a claim
# The equilibrium terms an ablation switches, each by its weight (0: off); its other keys stay as the config sets them.
TERMS = {"warm_start": "warm_start_weight", "spectral": "spectral_weight", "consistency": "consistency_weight", "memory": "memory_weight",
         "jacobian": "jacobian_weight"}
# The targets a config is held to, per run (docs/equilibrium.md, "The rule"): the worst cold/warm spread on hard frames
# (NME x100), RwR (2 it)'s hard NMF and NME changes against the cold start (%), and still NME against no term (%).
SPREAD_TARGET, RWR_NMF_TARGET, RWR_NME_TARGET, STILL_TARGET = 1.0, -10.0, 1.0, 3.0
ABLATION_RWR_ITERS = (1, 2)  # the RwR caps the ablation table reads


MAX_SEED = 2**32 - 1  # torch's and numpy's seeds fit in 32 bits; larger ones overflow the manifest's int64 too


@dataclass(frozen=True)
class StudySettings:
    seeds: tuple[int, ...] = (0, 1, 2)
    configs: tuple[str, ...] = ("ldeq_demo", "hrnet_demo")
    epochs: int | None = None  # None: each config's own
    bench: BenchSettings = BenchSettings()
    diagnose_pairs: int = 8  # pairs of consecutive frames per video for the equilibrium table
    ablation: str | None = None  # a config whose equilibrium terms are ablated: the configs studied are its variants


def run_study(world: Path, out: Path, settings: StudySettings = StudySettings(), force: bool = False) -> dict[str, Leaderboard]:
    """Train and bench every seed not done yet, then write the tables over seeds; returns them by name."""
    settings = with_ablation(settings, out)
    return write_tables([(None, seed, folder) for seed, folder in study_world(world, out, settings, force)], out, settings)


def run_worlds_study(world_seeds: tuple[int, ...], out: Path, settings: StudySettings = StudySettings(), preset: str | Preset = HELD_OUT_PRESET,
                     force: bool = False, workers: int = 2) -> dict[str, Leaderboard]:
    """A study on each world `wflwv synth` renders from a world seed (out/worlds/<world seed>/data, rendered where missing; its
    own study folder beside it), then the tables over every run, one per world and training seed: intervals over both."""
    settings = with_ablation(settings, out)
    if len(set(world_seeds)) != len(world_seeds):
        raise WflwvError(None, f"world seeds repeat: {','.join(map(str, world_seeds))}")
    units = []
    for world_seed in world_seeds:
        folder = out / "worlds" / str(world_seed)
        generate(folder / "data", preset, world_seed, workers)
        units += [(world_seed, seed, path) for seed, path in study_world(folder / "data", folder, settings, force)]
    return write_tables(units, out, settings)


def study_world(world: Path, out: Path, settings: StudySettings, force: bool) -> list[tuple[int, Path]]:
    """Train and bench every seed not done yet on one world and diagnose its LDEQs; each seed with its folder."""
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
    keys = {seed: io.digest({"seed": seed} | inputs) for seed in settings.seeds}
    for seed, key in keys.items():
        if not force and any(row.get("key") == key for row in rows):
            continue
        row = study_seed(stills, videos, out / "seeds" / str(seed), seed, settings, force) | {"key": key}
        rows = [other for other in rows if other["seed"] != seed] + [row]
        io.save_parquet(manifest_path, pd.DataFrame(rows))
        done = len({other.get("key") for other in rows} & set(keys.values()))
        Console().print(f"{out}: seed {seed} done, {len(settings.configs)} configs trained in {row['train_seconds'] / 60:.0f} min and benched in "
                        f"{row['bench_seconds'] / 60:.0f} min; {done} of {len(settings.seeds)} seeds done")
    diagnose_ldeqs(videos, out, settings)
    return [(seed, out / "seeds" / str(seed)) for seed in settings.seeds]


def write_tables(units: list[tuple[int | None, int, Path]], out: Path, settings: StudySettings) -> dict[str, Leaderboard]:
    """The tables over the runs (world or None, seed, its folder), written to `out`; returns them by name."""
    videos_table, stills_table = unit_tables(units, "video_leaderboard"), unit_tables(units, "still_leaderboard")
    tables = {
        "video_study": over_seeds(videos_table, ["model", "method", "curve", *described(videos_table)]),
        "still_study": over_seeds(stills_table, ["model", *described(stills_table)]),
        "rwr_study": rwr_effect(videos_table),
        "rwr_vs_filter": rwr_against_filters(videos_table),
        "equilibrium_study": equilibrium_table(units, settings),
    }
    tables["rwr_over_seeds"] = rwr_over_seeds(tables["rwr_study"], tables["rwr_vs_filter"])
    per_seed = {"video_study": "video_leaderboard", "still_study": "still_leaderboard"}
    first = units[0][2] / "bench"
    worlds = units[0][0] is not None
    boards = {name: study_board(name, table, settings.bench, read_leaderboard(first / f"{per_seed[name]}.parquet").columns if name in per_seed else None, worlds)
              for name, table in tables.items()}
    if settings.ablation:
        boards["ablation"] = ablation_board(ablation_runs(tables, stills_table, units, settings), settings, worlds)
    for board in boards.values():
        board.write(out)
    return boards


def study_inputs(world: Path, settings: StudySettings) -> dict:
    """All but the seed of what a seed's manifest row depends on (see the module's docstring), the world as a digest."""
    configs = {name: load_config(name) for name in settings.configs}
    files = sorted(path for folder in ("stills", "videos") for path in (world / folder).rglob("*") if path.is_file())
    return {
        "epochs": settings.epochs, "bench": dataclasses.asdict(settings.bench),
        "configs": [trained_part(config) | {"train": dataclasses.asdict(TrainSettings.from_config(config, source=name))} for name, config in configs.items()],
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


def unit_tables(units: list[tuple[int | None, int, Path]], name: str) -> pd.DataFrame:
    """One leaderboard of every run's bench, stacked with its seed column (and its world's, in a study of several worlds)."""
    return pd.concat([read_leaderboard(folder / "bench" / f"{name}.parquet").table.assign(**unit_columns(world, seed)) for world, seed, folder in units],
                     ignore_index=True)


def unit_columns(world: int | None, seed: int) -> dict:
    return {"seed": seed} if world is None else {"world": world, "seed": seed}


def unit_keys(table: pd.DataFrame) -> list[str]:
    """The columns that name a run: the training seed, and the world seed in a study of several worlds."""
    return [column for column in ("world", "seed") if column in table.columns]


def described(table: pd.DataFrame) -> list[str]:
    """The columns that say how a row was scored (its point scheme and normalisation): the same in every run of the row."""
    return [column for column in ("scheme", "normalisation") if column in table.columns]


def over_seeds(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every numeric column as <column>_mean and <column>_sd (sample standard deviation) over the runs (seeds, or world and
    seed pairs), per row of `keys`; `seeds`, the number of runs."""
    numeric = [c for c in table.select_dtypes("number").columns if c not in ("world", "seed")]
    groups = table.groupby(keys, sort=False)
    stats = groups[numeric].agg(["mean", "std"])
    stats.columns = [f"{column}_{'sd' if stat == 'std' else stat}" for column, stat in stats.columns]
    return stats.reset_index().assign(seeds=groups.size().to_numpy())


def rwr_effect(videos: pd.DataFrame) -> pd.DataFrame:
    """Per run (seed, or world and seed), model and RwR row: the relative change (%) of NMF and NME on every split against
    the model's cold start."""
    splits, keys = video_splits(videos), [*unit_keys(videos), "model"]
    cold = videos[videos["method"] == "raw"].set_index(keys)
    rwr = videos[videos["curve"] == "rwr"]
    rows = []
    for _, row in rwr.iterrows():
        base = cold.loc[tuple(row[keys])]
        changes = {f"{m}_{s}_change": percent_change(row[f"{m}_{s}"], base[f"{m}_{s}"]) for s in splits for m in ("nmf", "nme")}
        rows.append(dict(row[keys]) | {"method": row["method"]} | changes | {"solver_iters_per_frame": row["solver_iters_per_frame"]})
    return pd.DataFrame(rows)


def rwr_against_filters(videos: pd.DataFrame) -> pd.DataFrame:
    """Per run, every RwR row against its model's best filter setting (the lowest NME + NMF on the first split, as the
    bench picks it): the filter's name and the bench's paired differences on every split, with intervals and P(< 0)."""
    first = video_splits(videos)[0]
    differences, keys = [c for c in videos.columns if "_vs_filter" in c], [*unit_keys(videos), "model"]
    rows = []
    for (*_, model), table in videos.groupby(keys, sort=False):
        filtered = table[~table["curve"].isin(["raw", "rwr"])]
        if not len(filtered) or not (table["curve"] == "rwr").any():
            continue
        best = best_method(filtered.assign(curve="filter"), model, "filter", first)
        rows.append(table[table["curve"] == "rwr"][[*keys, "method", *differences]].assign(best_filter=best))
    columns = [*keys, "method", "best_filter", *differences]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def rwr_over_seeds(effect: pd.DataFrame, against_filter: pd.DataFrame) -> pd.DataFrame:
    """Per model and RwR row: the mean over seeds of each change against the cold start (rwr_effect) and each paired
    difference against the best filter (rwr_against_filters), with `_low` and `_high`, its t interval over the seeds."""
    differences = [c for c in against_filter.columns if c.endswith("_vs_filter")]
    keys = [*unit_keys(effect), "model", "method"]
    per_seed = effect.merge(against_filter[[*keys, *differences]], on=keys, how="left")
    figures = [c for c in per_seed.columns if c.endswith("_change")] + differences
    rows = []
    for (model, method), table in per_seed.groupby(["model", "method"], sort=False):
        interval = t_interval(table[figures].to_numpy(dtype=float).T)
        rows.append({"model": model, "method": method, "seeds": len(table)}
                    | {f"{figure}{part}": values[k] for k, figure in enumerate(figures) for part, values in (("", interval.estimate), ("_low", interval.low), ("_high", interval.high))})
    return pd.DataFrame(rows, columns=["model", "method", "seeds", *(f"{f}{p}" for f in figures for p in ("", "_low", "_high"))])


def equilibrium_table(units: list[tuple[int | None, int, Path]], settings: StudySettings) -> pd.DataFrame:
    """Every run's and LDEQ config's diagnose table, stacked with its run's (seed, and world) and model columns."""
    tables = [pd.read_parquet(path).assign(**unit_columns(world, seed), model=Path(config).stem)
              for world, seed, folder in units for config in settings.configs
              if (path := folder / Path(config).stem / EQUILIBRIUM_NAME).is_file()]
    columns = [*unit_columns(units[0][0], 0), "model", "split", "pairs", "contraction", "mean_shift", "mean_spread", "max_spread", "re_solved", "unconverged"]
    return pd.concat(tables, ignore_index=True).reindex(columns=columns) if tables else pd.DataFrame(columns=columns)


def with_ablation(settings: StudySettings, out: Path) -> StudySettings:
    """The settings with their configs the ablation's variants, written to out/configs, where an ablation is asked for;
    its bench runs only the RwR caps the ablation table reads (no RwR (3 it), no adaptive row: a third of its video time)."""
    if not settings.ablation:
        return settings
    bench = dataclasses.replace(settings.bench, rwr_iters=ABLATION_RWR_ITERS, adaptive_tol=None)
    return dataclasses.replace(settings, configs=ablation_configs(settings.ablation, out / "configs"), bench=bench)


def ablation_configs(base: str, folder: Path) -> tuple[str, ...]:
    """The variants of config `base` (a name or a path) that an ablation of its equilibrium terms trains, written to `folder`
    as <base>-<variant>.toml: no term, each term alone, all terms, all terms but each one. A term is off where its weight
    is 0; every other key stays as `base` sets it, and the harder view goes with the last term that solves it. The terms
    are those on in [train] once the keys of `base`'s [ablation] table are added to it: a config keeps there the terms
    an ablation switched and its own training leaves off (ldeq_demo's four)."""
    config, stem = load_config(base), Path(base).stem
    terms = config.get("ablation", {})
    if not isinstance(terms, dict):
        raise WflwvError(base, f"'ablation' must be a table of [train] keys, got {terms!r}")
    config = {key: value for key, value in config.items() if key != "ablation"} | {"train": config.get("train", {}) | terms}
    on = [term for term, key in TERMS.items() if config["train"].get(key)]
    if len(on) < 2:
        raise WflwvError(base, f"an ablation needs at least two equilibrium terms on in [train] and [ablation] ({', '.join(TERMS.values())}); {len(on)} on")
    variants = {"none": []} | {f"only-{term}": [term] for term in on} | {"all": on} | {f"all-but-{term}": [t for t in on if t != term] for term in on}
    paths = []
    for name, kept in variants.items():
        train = config["train"] | {TERMS[term]: 0.0 for term in on if term not in kept}
        if not uses_harder_view(config | {"train": train}):
            train.pop("warm_start_augmentation", None)
        path = folder / f"{stem}-{name}.toml"
        io.save_text(path, toml_text(config | {"train": train}))
        TrainSettings.from_config(load_config(path), source=path)  # a variant the training would refuse is refused here, before any work
        paths.append(str(path))
    return tuple(paths)


def uses_harder_view(config: dict) -> bool:
    """Whether a term kept in the config's [train] solves the harder view (warm_start_augmentation): training refuses the key otherwise."""
    settings = TrainSettings.from_config(config | {"train": {k: v for k, v in config["train"].items() if k != "warm_start_augmentation"}})
    return warm_solve_on(settings) or bool(settings.memory_weight)


def toml_text(config: dict, prefix: str = "") -> str:
    """A config (scalars, lists and tables) as TOML: its keys, then each table as [prefix.name]."""
    scalars = [f"{key} = {json.dumps(value)}" for key, value in config.items() if not isinstance(value, dict)]
    tables = [f"\n[{prefix}{key}]\n" + toml_text(value, f"{prefix}{key}.") for key, value in config.items() if isinstance(value, dict)]
    return "\n".join(scalars) + "\n" + "".join(tables)


def ablation_runs(tables: dict[str, pd.DataFrame], stills: pd.DataFrame, units: list[tuple[int | None, int, Path]], settings: StudySettings) -> pd.DataFrame:
    """One row per run (seed, or world and seed) and variant of the ablation, with every figure of its table: still NME and
    its change against the same run's no-term variant (%), the worst cold/warm spread on hard frames, RwR (1, 2 it)'s
    changes against the cold start (%) and differences from the best filter on every split, the training's seconds, and
    whether the run meets the spread and RwR targets."""
    models = [Path(config).stem for config in settings.configs]
    keys = [*unit_keys(stills), "model"]
    runs = stills[stills["model"].isin(models)][keys + ["nme_full"]].rename(columns={"nme_full": "still_nme"})
    equilibrium = tables["equilibrium_study"]
    hard = equilibrium[equilibrium["split"] == "hard"][keys + ["max_spread"]].rename(columns={"max_spread": "max_spread_hard"})
    runs = runs.merge(hard, on=keys, how="left")
    for iters in (1, 2):
        for name in ("rwr_study", "rwr_vs_filter"):
            table = tables[name][tables[name]["method"] == f"RwR ({iters} it)"]
            figures = [c for c in table.columns if c.endswith(("_change", "_vs_filter"))]
            runs = runs.merge(table[keys + figures].rename(columns={f: f"rwr{iters}_{f}" for f in figures}), on=keys, how="left")
    seconds = pd.DataFrame([unit_columns(world, seed) | {"model": model, "train_seconds": training_seconds(folder / model)}
                            for world, seed, folder in units for model in models])
    runs = runs.merge(seconds, on=keys, how="left")
    none = runs[runs["model"] == models[0]][keys[:-1] + ["still_nme"]].rename(columns={"still_nme": "none_nme"})
    runs = runs.merge(none, on=keys[:-1], how="left")
    runs["still_nme_vs_none"] = [percent_change(nme, base) for nme, base in zip(runs["still_nme"], runs.pop("none_nme"))]
    runs["spread_held"] = runs["max_spread_hard"] <= SPREAD_TARGET
    runs["rwr_held"] = (runs.get("rwr2_nmf_hard_change", math.nan) <= RWR_NMF_TARGET) & (runs.get("rwr2_nme_hard_change", math.nan) <= RWR_NME_TARGET)
    return runs


def ablation_table(runs: pd.DataFrame, configs: tuple[str, ...]) -> pd.DataFrame:
    """Per variant, in the ablation's order: its number of terms on, every figure of `ablation_runs` as its mean over the
    runs with `_low` and `_high`, its t interval over them, and the runs meeting the spread and the RwR target as "k/n"."""
    figures = [c for c in runs.columns if c not in ("world", "seed", "model", "spread_held", "rwr_held")]
    rows = []
    for config in configs:
        model, train = Path(config).stem, load_config(config).get("train", {})
        table = runs[runs["model"] == model]
        interval = t_interval(table[figures].to_numpy(dtype=float).T)
        rows.append({"model": model, "terms": sum(bool(train.get(key)) for key in TERMS.values()), "seeds": len(table)}
                    | {f"{figure}{part}": values[k] for k, figure in enumerate(figures) for part, values in (("", interval.estimate), ("_low", interval.low), ("_high", interval.high))}
                    | {held: f"{int(table[held].sum())}/{len(table)}" for held in ("spread_held", "rwr_held")})
    return pd.DataFrame(rows)


def rule_choice(table: pd.DataFrame) -> tuple[str, str]:
    """The variant the rule of docs/equilibrium.md picks from an ablation table, and why: of those meeting the spread and RwR
    targets in every run and the still target on the mean, the fewest terms (then the shorter training, the lower still
    NME); else of those meeting the spread target, the fewest terms (then more runs meeting RwR's, the shorter training);
    else the variant with no term."""
    every = table["spread_held"].map(held_in_every_run) & table["rwr_held"].map(held_in_every_run)
    meeting = table[every & (table["still_nme_vs_none"] <= STILL_TARGET)]
    if len(meeting):
        return meeting.sort_values(["terms", "train_seconds", "still_nme"]).iloc[0]["model"], "it meets every target"
    spread = table[table["spread_held"].map(held_in_every_run)]
    if len(spread):
        runs_held = -spread["rwr_held"].map(lambda held: int(held.split("/")[0]))
        return spread.assign(runs_held=runs_held).sort_values(["terms", "runs_held", "train_seconds"]).iloc[0]["model"], "no variant meets every target; it meets the spread target"
    return table.sort_values("terms").iloc[0]["model"], "no variant meets the spread target"


def held_in_every_run(count: str) -> bool:
    held, runs = count.split("/")
    return held == runs != "0"


def ablation_board(runs: pd.DataFrame, settings: StudySettings, worlds: bool) -> Leaderboard:
    """The ablation's one table (ablation_table) as a leaderboard."""
    table = ablation_table(runs, settings.configs)
    columns = {"model": ("config", ""), "terms": ("terms", ""), "seeds": ("runs", ""), "still_nme": ("still NME", ".2f"), "still_nme_vs_none": ("still NME vs none %", "+.1f"),
               "max_spread_hard": ("max spread hard", ".2f"), "spread_held": (f"spread <= {SPREAD_TARGET:g}", "")}
    for column in table.columns:
        if column.startswith("rwr") and not column.endswith(("_low", "_high")) and column != "rwr_held":
            iters, figure = column[3], column[5:]
            metric, split, *_ = figure.split("_")
            against = "change %" if figure.endswith("_change") else "- best filter"
            columns[column] = (f"RwR ({iters} it) {metric.upper()} {split} {against}", "+.1f" if figure.endswith("_change") else "+.3f")
    columns |= {"rwr_held": (f"RwR (2 it) target ({RWR_NMF_TARGET:+g}% NMF, {RWR_NME_TARGET:+g}% NME hard)", ""), "train_seconds": ("training s", ".0f")}
    chosen, why = rule_choice(table)
    note = f"{STUDY_NOTES['ablation']} The rule of docs/equilibrium.md picks {chosen}: {why}."
    return Leaderboard("ablation", table, columns, settings.bench.norm, settings.bench.nmf_definition, note, run_interval_note(worlds))


def run_interval_note(worlds: bool) -> str:
    over = "the runs, one per world and training seed (runs column)" if worlds else "the training seeds (seeds column)"
    return f"[low, high]: {100 * LEVEL:.0f}% t interval of the mean over {over}."


def percent_change(value: float, base: float) -> float:
    """100 * (value / base - 1); NaN where the base is 0 (a split whose cold start does not flicker has no relative change)."""
    return 100 * (value / base - 1) if base != 0 else float("nan")


def study_board(name: str, table: pd.DataFrame, bench: BenchSettings, shown: dict[str, tuple[str, str]] | None = None, worlds: bool = False) -> Leaderboard:
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
    interval = run_interval_note(worlds) if name == "rwr_over_seeds" else None
    return Leaderboard(name, shown, columns, bench.norm, None if name in ("still_study", "equilibrium_study") else bench.nmf_definition, STUDY_NOTES[name], interval)


def mean_sd(means: pd.Series, sds: pd.Series) -> pd.Series:
    """"mean ± sd" with three decimals; the sd is blank for a single seed."""
    return pd.Series([f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}" for m, s in zip(means, sds)], index=means.index)


STUDY_NOTES = {
    "ablation": "One row per variant of the config's equilibrium terms (none, each alone, all, all but each), over the runs: still NME and its "
                "change against the same run's no-term variant; the worst cold/warm spread on hard frames (NME x100) and the runs where it is at "
                f"most {SPREAD_TARGET:g}; RwR's changes against the same model's cold start (%) and differences from its best filter (x100); the runs "
                "meeting RwR's target; the training's seconds (its history).",
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
