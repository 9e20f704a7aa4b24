"""The `wflwv` command line. Each command is a thin shell over one stage module."""

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from wflwv.errors import WflwvError


class WritablePath(click.Path):
    """An output path whose folder (the path itself, or a file's parent) is created and tried when the command line is read."""

    def convert(self, value, param, ctx) -> Path:
        path = super().convert(value, param, ctx)
        from wflwv import io

        try:
            io.check_writable(path.parent if self.file_okay else path)
        except OSError as error:
            raise WflwvError(path, f"cannot be written ({error.strerror or error})") from None
        return path


EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT_DIR = WritablePath(file_okay=False, path_type=Path)
OUT_FILE = WritablePath(dir_okay=False, path_type=Path)
# Inputs checked by the command itself, so that a missing one is a one-line error naming it.
IN_FILE = click.Path(dir_okay=False, path_type=Path)
IN_DIR = click.Path(file_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0)


def comma_separated(kind: type | click.ParamType):
    """A click callback reading "a,b,c" as a tuple of `kind` (a type or a click type such as POSITIVE)."""
    kind = click.types.convert_type(kind)

    def parse(ctx, param, value: str | None) -> tuple | None:
        return None if value is None else tuple(kind.convert(part, param, ctx) for part in value.split(","))

    return parse


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wflwv")
def cli() -> None:
    """WFLW-V: build and run the benchmark for stable video facial landmarks (LDEQ + RwR)."""


@cli.command()
@click.option("--out", required=True, type=OUT_DIR, help="Output folder: stills/ (WFLW layout) and videos/ (WFLW-V layout).")
@click.option("--preset", default="demo", show_default=True, help="World size preset: tiny, demo, heldout (the demo world with 48 hard and 48 easy videos) or full.")
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE, help="Everything generated is a function of this seed.")
@click.option("--workers", default=2, show_default=True, type=POSITIVE, help="Rendering processes.")
@click.option("--force", is_flag=True, help="Regenerate items that already exist.")
def synth(out: Path, preset: str, seed: int, workers: int, force: bool) -> None:
    """Generate the embedded synthetic face world (stills and videos with exact landmarks)."""
    from wflwv.synth import generate

    summary = generate(out, preset=preset, seed=seed, workers=workers, force=force)
    click.echo(f"synthetic world in {out}: {summary}")


@cli.command()
@click.option("--data", required=True, type=EXISTING_DIR, help="A WFLW-layout still set (WFLW_annotations/, WFLW_images/).")
@click.option("--config", default="ldeq_demo", show_default=True, help="Model config: a shipped name (models/) or a TOML path.")
@click.option("--out", required=True, type=OUT_DIR, help="Run folder: checkpoint.pth.tar and the training log.")
@click.option("--epochs", type=POSITIVE, help="Override the config's number of epochs.")
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE, help="Seed of the initial weights, the augmentations and the batch order: ensemble members of one config differ by it.")
@click.option("--force", is_flag=True, help="Start again instead of resuming from the run folder's checkpoint.")
@click.option("--device", default="cpu", show_default=True, help="Torch device to train on: cpu, cuda or cuda:N (under torchrun, cuda: each process its local GPU).")
@click.option("--train-splits", default="train", show_default=True, callback=comma_separated(str), help="Still splits trained on (comma-separated): train,test for the paper's oracle members; the logged NME stays the test split's.")
@click.option("--backend", type=click.Choice(["nccl", "gloo"]), help="Under torchrun: the process group's backend (default: nccl on GPUs, gloo on the CPU).")
def train(data: Path, config: str, out: Path, epochs: int | None, seed: int, force: bool, device: str, train_splits: tuple[str, ...], backend: str | None) -> None:
    """Train a landmark model on WFLW-format stills (resumes an interrupted run).

    Under torchrun (`torchrun --nproc_per_node N -m wflwv train ...`) each process trains one
    DistributedDataParallel replica on its shard; the config's batch size is per process.
    """
    from wflwv.train import train as run_training

    checkpoint = run_training(data, config, out, epochs=epochs, seed=seed, force=force, device=device, backend=backend, train_splits=train_splits)
    click.echo(f"checkpoint: {checkpoint}")


def filter_list(ctx, param, value: str) -> tuple[str, ...]:
    """--filters: comma-separated filter names; "" or "none" for no filter."""
    from wflwv.filters import FILTERS

    names = () if value.strip().lower() in ("", "none") else tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in FILTERS]
    if unknown:
        raise click.BadParameter(f"unknown filter {unknown[0]!r}, expected some of {', '.join(FILTERS)} (or none)")
    return names


def named_folders(ctx, param, values: tuple[str, ...]) -> dict[str, Path]:
    """--predictions NAME=DIR (or DIR: the name of its method.json, else of the folder) as {name: folder}."""
    from wflwv.predictions import read_method, validate_method_name

    sets = {}
    for value in values:
        name, _, folder = value.partition("=") if "=" in value else (None, "", value)
        path = Path(folder)
        if not path.is_dir():
            raise WflwvError(path, "no such prediction set folder")
        named_in = "" if name is not None else f"{path / 'method.json'}: "
        try:
            name = validate_method_name(read_method(path).name if name is None else name)
        except WflwvError as error:
            raise click.BadParameter(named_in + error.problem if error.path is None else str(error)) from None
        if name in sets:
            raise click.BadParameter(f"two prediction sets are named {name!r}: give them NAME=DIR")
        sets[name] = path
    return sets


@cli.command()
@click.option("--model", "checkpoints", multiple=True, type=EXISTING_FILE, help="A checkpoint of any family (wflwv's, or the authors' LDEQ .pth.tar); repeat for several models.")
@click.option("--predictions", multiple=True, callback=named_folders, help="NAME=DIR: a prediction set (docs/submission.md), any method's landmarks on --videos, benched beside the models; repeatable.")
@click.option("--method", "methods", multiple=True, help="NAME[:KEY=VALUE,...]: a landmark method (wflwv.methods, docs/methods.md) run on --videos with their boxes and benched beside the models; repeatable.")
@click.option("--videos", type=EXISTING_DIR, help="A WFLW-V-layout folder (videos/, landmarks/, bboxes/, <split>_video_IDs.txt) or a 300-VW one (<ID>/vid.avi, <ID>/annot/): the video leaderboard.")
@click.option("--stills", type=EXISTING_DIR, help="A WFLW still set, official layout (WFLW_annotations/, WFLW_images/) or pre-cropped (test.txt, test/, test_<subset>...): the still-image leaderboard.")
@click.option("--out", required=True, type=OUT_DIR, help="Where the leaderboards, predictions, plots and bench.json go.")
@click.option("--slots", type=POSITIVE, help="Video streams batched together (default: measured per model with its layout and threads, see wflwv/tuning.py).")
@click.option("--try-compile", is_flag=True, help="Also measure each LDEQ's cell through torch.compile, kept if 5% faster (compiling takes a minute or more).")
@click.option("--rwr-iters", default="1,2,3", show_default=True, callback=comma_separated(POSITIVE), help="RwR's caps on solver iterations per frame (comma-separated): one row each for every DEQ.")
@click.option("--adaptive-tol", type=NON_NEGATIVE_FLOAT, help="RwR (adaptive): 2 iterations per frame, 1 where the relative residual from the previous frame's z* is below this (0: no such row) [default: 0.1].")
@click.option("--filters", default="ema,one_euro,savgol,kalman", show_default=True, callback=filter_list, help="Filters whose sweep of settings smooths every model's raw predictions online (comma-separated; none for no filter).")
@click.option("--nmf", "nmf_definition", type=click.Choice(["paper", "released"]), help="NMF definition: the paper's, or the authors' released NMJ [default: the protocol's: paper for wflwv, released for released].")
@click.option("--protocol", type=click.Choice(["wflwv", "released"]), default="wflwv", show_default=True, help="wflwv's own evaluation, or the authors' release's: its crop, solver conventions, RwR cap on the first frame and NMJ (docs/protocol.md).")
@click.option("--norm", type=click.Choice(["interocular", "interpupil", "diagonal"]), default="interocular", show_default=True, help="NME normalisation.")
@click.option("--scheme", "schemes", multiple=True, help="Also score every entrant on this point scheme (ibug68, ...) where it and the videos convert to it; repeatable (docs/metrics.md).")
@click.option("--device", default="cpu", show_default=True, help="Torch device the models run on (cpu, cuda, cuda:1...).")
@click.option("--force", is_flag=True, help="Recompute predictions that already exist.")
def bench(checkpoints: tuple[Path, ...], predictions: dict[str, Path], methods: tuple[str, ...], videos: Path | None, stills: Path | None, out: Path, slots: int | None, try_compile: bool, rwr_iters: tuple[int, ...], adaptive_tol: float | None, filters: tuple[str, ...], nmf_definition: str | None, protocol: str, norm: str, schemes: tuple[str, ...], device: str, force: bool) -> None:
    """Leaderboards of models and prediction sets: videos (raw, RwR, every filter's sweep) and/or stills (NME, FR10, AUC10, cost), with 95% intervals."""
    from wflwv.bench import BenchSettings, run_bench
    from wflwv.report import video_differences, video_summary

    if videos is None and stills is None:
        raise click.UsageError("give --videos, --stills or both")
    if not checkpoints and not predictions and not methods:
        raise click.UsageError("give --model, --predictions, --method or several")
    if (predictions or methods) and videos is None:
        raise click.UsageError("--predictions and --method are scored on --videos: give them")
    if stills is not None and not checkpoints:
        raise click.UsageError("--stills scores models: give --model")
    nmf_definition = nmf_definition or ("released" if protocol == "released" else "paper")
    adaptive = {} if adaptive_tol is None else {"adaptive_tol": adaptive_tol or None}
    settings = BenchSettings(slots=slots, try_compile=try_compile, rwr_iters=rwr_iters, filters=filters, nmf_definition=nmf_definition, norm=norm, device=device, protocol=protocol, schemes=schemes, **adaptive)
    predictions = predictions | method_sets(methods, videos, out, force, taken=set(predictions), schemes=schemes)
    boards = run_bench(list(checkpoints), out, videos=videos, stills=stills, settings=settings, force=force, predictions=predictions)
    if "stills" in boards:
        click.echo(boards["stills"].markdown)
    if "videos" in boards:
        click.echo(video_summary(boards["videos"]).markdown)
        click.echo(video_differences(boards["videos"]).markdown)
    click.echo(f"leaderboards written to {out}; see them with: wflwv report {out}")


def method_sets(methods: tuple[str, ...], videos: Path | None, out: Path, force: bool, taken: set[str], schemes: tuple[str, ...]) -> dict[str, Path]:
    """Each --method run on the videos as a prediction set under OUT/methods/, by its label; a label taken by a prediction set
    or another --method, or an unknown --scheme, is refused before any method runs."""
    from wflwv.bench import slug
    from wflwv.methods import method_from_text, method_label
    from wflwv.methods.run import predict_video_set
    from wflwv.schemes import get_scheme

    for scheme in schemes:
        get_scheme(scheme)
    labels = [method_label(text) for text in methods]
    clash = next((label for label in labels if label in taken or labels.count(label) > 1), None)
    if clash is not None:
        raise click.UsageError(f"the name {clash!r} is taken twice (--method and {'--predictions' if clash in taken else '--method'}): give the prediction set another NAME=, or the method other options")
    loaded = {text: method_from_text(text) for text in methods}  # every method refused or loaded before any runs
    return {method_label(text): predict_video_set(text, method, videos, out / "methods" / slug(method_label(text)), force) for text, method in loaded.items()}


@cli.group()
def leaderboard() -> None:
    """Combine leaderboard entries of several bench runs."""


@leaderboard.command("merge")
@click.argument("runs", nargs=-1, required=True, type=EXISTING_DIR)
@click.option("--out", required=True, type=OUT_DIR, help="Where the merged video leaderboard and summary go (.md, .csv, .parquet); not one of the RUNS.")
@click.option("--verify", "videos", type=EXISTING_DIR, help="The video set the runs were scored on: recompute each entry's NME and NMF from its prediction set where the run holds it.")
def merge(runs: tuple[Path, ...], out: Path, videos: Path | None) -> None:
    """One video leaderboard from the entries of several `wflwv bench` runs on the same video set."""
    from wflwv.leaderboard import merge_entries
    from wflwv.report import video_summary

    if any(out.resolve() == run.resolve() for run in runs):
        raise click.BadParameter(f"{out} is one of the runs: its own tables would be overwritten", param_hint="--out")
    board = merge_entries(list(runs), videos)
    board.write(out)
    video_summary(board).write(out)
    click.echo(video_summary(board).markdown)
    click.echo(f"{len(board.table)} entries from {len(runs)} runs written to {out}")


@cli.command()
@click.option("--world", type=EXISTING_DIR, help="A world from `wflwv synth` (stills/ and videos/); or --world-seeds.")
@click.option("--world-seeds", callback=comma_separated(NON_NEGATIVE), help="World seeds (comma-separated): each world rendered by `wflwv synth` into OUT/worlds/<seed>/data, the world a factor beside the training seed.")
@click.option("--preset", default="heldout", show_default=True, help="The synth preset of the --world-seeds worlds.")
@click.option("--out", required=True, type=OUT_DIR, help="Study folder: seeds/<seed>/ (training runs and bench), the tables over seeds, manifest.parquet.")
@click.option("--seeds", default="0,1,2", show_default=True, callback=comma_separated(click.IntRange(0, 2**32 - 1)), help="Training seeds (comma-separated): every config is trained once per seed.")
@click.option("--configs", default="ldeq_demo,hrnet_demo", show_default=True, callback=comma_separated(str), help="Model configs (comma-separated): names in models/ or TOML paths.")
@click.option("--ablation", help="Instead of --configs: this config's variants without its equilibrium terms (those on in [train] and [ablation]), with each alone, all, and all but each; one ablation table.")
@click.option("--epochs", type=POSITIVE, help="Override every config's number of epochs.")
@click.option("--force", is_flag=True, help="Retrain and rebench every seed.")
def study(world: Path | None, world_seeds: tuple[int, ...] | None, preset: str, out: Path, seeds: tuple[int, ...], configs: tuple[str, ...], ablation: str | None,
          epochs: int | None, force: bool) -> None:
    """Train every config from several seeds (on several worlds), bench each, and write the leaderboards as mean ± sd over seeds and RwR's effect per seed."""
    from wflwv.study import StudySettings, run_study, run_worlds_study

    if (world is None) == (world_seeds is None):
        raise click.UsageError("give either --world or --world-seeds")
    given = {name for name in ("preset", "configs") if click.get_current_context().get_parameter_source(name) is not ParameterSource.DEFAULT}
    if world and "preset" in given:
        raise click.UsageError("--preset renders the --world-seeds worlds; a --world is rendered already")
    if ablation and "configs" in given:
        raise click.UsageError("--ablation makes its own configs: give --configs or --ablation")
    settings = StudySettings(seeds, configs, epochs, ablation=ablation)
    boards = run_study(world, out, settings, force=force) if world else run_worlds_study(world_seeds, out, settings, preset, force=force)
    for name in ("ablation",) if ablation else ("rwr_study", "rwr_vs_filter", "equilibrium_study"):
        click.echo(boards[name].markdown)
    click.echo(f"study tables written to {out}: {', '.join(boards)} (.md, .csv, .parquet)")


@cli.command()
@click.argument("run", type=EXISTING_DIR)
def report(run: Path) -> None:
    """Write RUN/report.html from a `wflwv bench` output folder: leaderboards, plots, overlay GIFs of the hardest videos."""
    from wflwv.report import write_report

    click.echo(f"report: {write_report(run)}")


@cli.command()
@click.option("--videos", required=True, type=EXISTING_DIR, help="A WFLW-V-layout folder (videos/, landmarks/, bboxes/).")
@click.option("--model", "checkpoint", required=True, type=EXISTING_FILE, help="An LDEQ checkpoint.")
@click.option("--pairs", default=8, show_default=True, type=POSITIVE, help="Pairs of consecutive frames measured per video.")
def diagnose(videos: Path, checkpoint: Path, pairs: int) -> None:
    """Why RwR does or does not stabilise an LDEQ: its fixed points' spread and contraction between frames."""
    from wflwv.equilibrium import CONVERGED_ITERS, PLAIN_ITERS, diagnose as measure
    from wflwv.models import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    click.echo(measure(videos, model, pairs).to_string(index=False, float_format="{:.4f}".format))
    click.echo("\nshift: NME x100 between the fixed points of frames n-1 and n.")
    click.echo("spread: NME x100 between frame n's fixed points from z0 = 0 and from z*_(n-1) (0: one fixed point).")
    click.echo("contraction: share of the gap to frame n's fixed point left after one iteration from z*_(n-1).")
    click.echo(f"re_solved: pairs where the model's solver did not meet the tolerance in {CONVERGED_ITERS} iterations and plain iteration did in {PLAIN_ITERS}.")
    click.echo("unconverged: pairs where frame n's cold or warm solve met the tolerance by neither (no attracting fixed point).")


def byte_rate(ctx, param, value: str | None) -> float | None:
    """A click callback reading "500K" or "2M" (bytes per second) as a number."""
    if value is None:
        return None
    from yt_dlp.utils import parse_bytes

    rate = parse_bytes(value)
    if rate is None or rate <= 0:
        raise click.BadParameter(f"{value!r} is not a rate in bytes per second, such as 500K or 2M")
    return float(rate)


@cli.command()
@click.option("--out", required=True, type=OUT_DIR, help="Build folder: videos/<ID>.mp4 and stages/scrape/ (manifest.parquet, rows).")
@click.option("--queries", type=IN_FILE, help="Search queries, one a line (UTF-8, any language): YouTube search with the Creative Commons filter.")
@click.option("--per-query", default=20, show_default=True, type=POSITIVE, help="Videos taken from each query's results.")
@click.option("--ids", type=IN_FILE, is_flag=False, flag_value="data/WFLW_V_lists/download_ranges.txt", help="Official ID list: 'ID start end' lines (inclusive frames; download_ranges.txt) or 'ID None None' (skipped). Given without a file: data/WFLW_V_lists/download_ranges.txt, where the authors' lists go (docs/scrape.md).")
@click.option("--urls", type=IN_FILE, help="CSV of other sites' videos: columns url, licence, optional id, start, end.")
@click.option("--info-json", type=IN_DIR, help="Folder of recorded <ID>.info.json metadata (yt-dlp's --load-info-json path); with --ids, the metadata of the listed IDs.")
@click.option("--cookies", type=IN_FILE, help="Netscape cookies file for yt-dlp (YouTube's 'confirm you're not a bot').")
@click.option("--max-height", default=720, show_default=True, type=POSITIVE, help="Largest video height downloaded (video only).")
@click.option("--window-seconds", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Length of the window chosen when none is given: the first one with a face throughout.")
@click.option("--retries", default=3, show_default=True, type=NON_NEGATIVE, help="Further attempts after a retryable failure (HTTP 5xx, cut transfer, timeout).")
@click.option("--backoff", default=2.0, show_default=True, type=NON_NEGATIVE_FLOAT, help="Seconds before the first retry, doubled before each next one.")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Seconds without data before a connection is given up.")
@click.option("--rate-limit", callback=byte_rate, help="Bandwidth of each download in bytes per second, such as 2M (yt-dlp's ratelimit).")
@click.option("--min-interval", default=1.0, show_default=True, type=NON_NEGATIVE_FLOAT, help="Seconds between the starts of any two downloads, across all workers.")
@click.option("--allow-nc", is_flag=True, help="Also accept NonCommercial Creative Commons licences (CC BY-NC, CC BY-NC-SA).")
@click.option("--allow-nd", is_flag=True, help="Also accept NoDerivatives Creative Commons licences (CC BY-ND).")
@click.option("--trust-cc-search", is_flag=True, help="A search result whose metadata has no licence row counts as CC BY, on the evidence of YouTube's Creative Commons search filter.")
@click.option("--keep-downloads", is_flag=True, help="Keep the full downloads in stages/scrape/downloads/.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="local: one video at a time; ray: as many as the Ray instance has CPUs.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Redo candidates already finished (and searches already made).")
def scrape(out: Path, queries: Path | None, per_query: int, ids: Path | None, urls: Path | None, info_json: Path | None, cookies: Path | None, max_height: int, window_seconds: float, retries: int, backoff: float, timeout: float, rate_limit: float | None, min_interval: float, allow_nc: bool, allow_nd: bool, trust_cc_search: bool, keep_downloads: bool, executor: str, address: str | None, force: bool) -> None:
    """Download Creative Commons videos and cut frame-accurate windows, with a manifest of every candidate."""
    from wflwv.pipeline.stage import Executor
    from wflwv.scrape import FetchSettings, ScrapeSettings, read_ids, read_info_jsons, read_queries, read_urls, search, summary
    from wflwv.scrape import scrape as run_scrape

    given = [name for name, value in (("--queries", queries), ("--ids", ids), ("--urls", urls), ("--info-json", info_json)) if value]
    if len(given) != 1 and given != ["--ids", "--info-json"]:
        raise click.UsageError("give one source: --queries, --ids, --urls or --info-json (or --ids with --info-json)")
    if cookies and not cookies.is_file():
        raise WflwvError(cookies, "no such cookies file")
    fetch = FetchSettings(max_height, cookies, timeout, retries, backoff, rate_limit, min_interval, allow_nc, allow_nd, trust_cc_search)
    if queries:
        candidates = search(read_queries(queries), per_query, out, fetch, force=force)
    elif ids:
        candidates = read_ids(ids, info_json)
    else:
        candidates = read_urls(urls) if urls else read_info_jsons(info_json)
    manifest = run_scrape(out, candidates, ScrapeSettings(fetch, window_seconds, keep_downloads), Executor(executor, address), force=force)
    click.echo(f"scrape: {summary(manifest)}; manifest in {out / 'stages' / 'scrape' / 'manifest.parquet'}")
    exit_if_failed(manifest)


@cli.command()
@click.option("--build", type=EXISTING_DIR, help="Build folder: reads videos/<ID>.mp4 (and landmarks/<ID>.npy), writes bboxes/<ID>.npy.")
@click.option("--from-landmarks", is_flag=True, help="Bootstrap round: boxes from the current labels landmarks/<ID>.npy instead of MTCNN.")
@click.option("--round", "round_number", default=1, show_default=True, type=POSITIVE, help="Bootstrap round number (its own resumable stage, stages/boxes_roundN).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for MTCNN: cpu, cuda or cuda:N.")
@click.option("--batch-size", default=16, show_default=True, type=POSITIVE, help="Frames per MTCNN call.")
@click.option("--max-side", default=640, show_default=True, type=NON_NEGATIVE, help="Frames whose longer side exceeds this are detected downscaled to it (0: never).")
@click.option("--max-gap", default=10, show_default=True, type=NON_NEGATIVE, help="Frames without a detection that are filled by interpolation; longer gaps are marked as no face.")
@click.option("--min-face", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="A video fails unless the main face is on at least this share of its frames.")
@click.option("--smoothing", default=0.1, show_default=True, type=NON_NEGATIVE_FLOAT, help="Standard deviation in seconds of the Gaussian that smooths boxes over time (0: none).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), help="Box calibration JSON to use, or to write with --fit-calibration [default: BUILD/box_calibration.json when there is one, else the shipped calibration].")
@click.option("--fit-calibration", "fit_stills", type=EXISTING_DIR, help="Refit the calibration on this WFLW-layout still set, write it to --calibration (or BUILD/box_calibration.json) and stop; the shipped file is never overwritten.")
@click.option("--split", default="train", show_default=True, help="Still split that --fit-calibration fits on.")
@click.option("--predictor", "predictors", multiple=True, type=EXISTING_FILE, help="With --fit-calibration: fit the landmark map on this checkpoint's landmarks instead of the true ones (repeat: their mean).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Run videos in this process or on Ray.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Redo videos already done.")
def boxes(build: Path | None, from_landmarks: bool, round_number: int, device: str, batch_size: int, max_side: int, max_gap: int, min_face: float,
          smoothing: float, calibration: Path | None, fit_stills: Path | None, split: str, predictors: tuple[Path, ...], executor: str, address: str | None, force: bool) -> None:
    """Face boxes for every video of a build folder: MTCNN, tracked, calibrated and smoothed, or bootstrapped from landmarks."""
    from wflwv.boxes import BoxSettings, TrackSettings, build_calibration, calibration_for, fit_calibration, members_predictor, run_boxes
    from wflwv.boxes.stage import summary
    from wflwv.pipeline.stage import Executor

    if fit_stills is not None:
        if calibration is None and build is None:
            raise click.UsageError("--fit-calibration writes to --calibration FILE or to BUILD/box_calibration.json (--build BUILD)")
        calibration = calibration or build_calibration(build)
        fitted = fit_calibration(fit_stills, split, device, predict=members_predictor(predictors, device) if predictors else None)
        fitted.save(calibration)
        click.echo(f"box calibration fitted on {fitted.faces} faces of {fit_stills} ({split}), written to {calibration}")
        return
    if build is None:
        raise click.UsageError("--build is required (or --fit-calibration to refit the calibration)")
    calibration = calibration or calibration_for(build)
    settings = BoxSettings(device, batch_size, max_side or None, min_face, smoothing, calibration, TrackSettings(max_gap=max_gap))
    manifest = run_boxes(build, settings, from_landmarks, round_number, Executor(executor, address), force)
    click.echo(summary(manifest))
    exit_if_failed(manifest)


@cli.command()
@click.option("--pipeline", default="wflwv", show_default=True, help="The pipeline to check for: a path, or a shipped pipeline's name.")
@click.option("--cookies", type=IN_FILE, help="The cookies file scrape will be given (default: the pipeline's [scrape.fetch] cookies).")
def doctor(pipeline: str, cookies: Path | None) -> None:
    """Check what the real reproduction needs (JavaScript runtime, cookies, GPU, WFLW, ID lists, disk, ffmpeg, box calibration) and how to fix what is missing; exit 1 if something required is."""
    from wflwv.doctor import diagnose, report

    checks = diagnose(pipeline, cookies)
    click.echo(report(checks))
    if any(check.required and not check.ok for check in checks):
        sys.exit(1)


@cli.command("run")
@click.argument("pipeline")
@click.option("--only", default=None, callback=lambda ctx, param, value: tuple(value.split(",")) if value else (), help="Run only these steps (comma-separated), e.g. label,split.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for training, detection and labelling: cpu, cuda or cuda:N.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Run the per-video stages in this process or on Ray.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Redo every item of every step.")
def run(pipeline: str, only: tuple[str, ...], device: str, executor: str, address: str | None, force: bool) -> None:
    """Run a pipeline file (a path, or a shipped one's name: demo, wflwv): the whole WFLW-V construction (world, members, scrape, boxes, label, split, export, oracle, bench), resumable."""
    from wflwv.pipeline.run import STEPS, run_pipeline
    from wflwv.pipeline.stage import Executor

    unknown = [step for step in only if step not in STEPS]
    if unknown:
        raise click.BadParameter(f"unknown step {unknown[0]!r} (steps: {', '.join(STEPS)})", param_hint="--only")
    run_pipeline(pipeline, Executor(executor, address), device, force, only)


@cli.command()
@click.option("--build", required=True, type=EXISTING_DIR, help="Build folder: videos/<ID>.mp4 and stabilised bboxes/<ID>.npy; landmarks/ and variance/ are written.")
@click.option("--members", multiple=True, type=EXISTING_FILE, help="A member checkpoint (repeat the option for each member).")
@click.option("--ensemble-dir", type=EXISTING_DIR, help="A folder of member run folders, <name>/checkpoint.pth.tar each.")
@click.option("--method", "methods", multiple=True, help="NAME[:KEY=VALUE,...]: a landmark method as a point-only member, averaged with the heatmap members' points (docs/methods.md); repeatable.")
@click.option("--corrections", type=EXISTING_FILE, help="CSV video_id,member,first_frame,last_frame: members dropped on those frames (inclusive).")
@click.option("--batch-size", default=64, show_default=True, type=POSITIVE, help="Frames per batch through each member.")
@click.option("--device", default="cpu", show_default=True, help="torch device; with --executor ray and cuda, each labelling worker gets one GPU.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Label in this process or on Ray.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Relabel videos already labelled.")
def label(build: Path, members: tuple[Path, ...], ensemble_dir: Path | None, methods: tuple[str, ...], corrections: Path | None, batch_size: int, device: str, executor: str, address: str | None, force: bool) -> None:
    """Label every video with the ensemble's averaged heatmaps, and keep the ensemble's variance."""
    from wflwv.label import find_members, label as run_label
    from wflwv.pipeline.stage import Executor

    checkpoints = find_members(members, ensemble_dir) if members or ensemble_dir or not methods else ()  # methods alone can label
    manifest = run_label(build, checkpoints, corrections, Executor(executor, address), device, batch_size, force, methods)
    failed = manifest[manifest["status"] == "failed"]
    click.echo(f"labelled {len(manifest) - len(failed)} of {len(manifest)} videos with {len(checkpoints) + len(methods)} members in {build}")
    unlabelled = manifest["unlabelled_frames"].fillna(0) if "unlabelled_frames" in manifest else None
    if unlabelled is not None and unlabelled.any():
        click.echo(f"{int(unlabelled.sum())} frames of {int(unlabelled.gt(0).sum())} videos have no label: no member found a face there (missing ground truth)")
    exit_if_failed(manifest)


def exit_if_failed(manifest) -> None:
    """The per-item stages' (scrape, boxes, label; verify alike) partial failure: after the summary, each failure's reason on
    stderr and exit status 1."""
    failed = manifest[manifest["status"] == "failed"] if len(manifest) else manifest
    for reason in failed.get("reason", []):
        click.echo(f"failed: {reason}", err=True)
    if len(failed):
        sys.exit(1)


@cli.command()
@click.option("--build", required=True, type=EXISTING_DIR, help="A labelled build folder (landmarks/ and variance/).")
@click.option("--k", "k", required=True, type=POSITIVE, help="Videos per split: the K highest scores are hard, the K lowest easy.")
@click.option("--force", is_flag=True, help="Score again videos already scored under the same labels.")
def split(build: Path, k: int, force: bool) -> None:
    """Rank the videos by ensemble variance; write hard_video_IDs.txt, easy_video_IDs.txt and split_scores.parquet."""
    from wflwv.split import split as run_split

    table = run_split(build, k, force=force)
    click.echo(f"{k} hard and {k} easy videos of {len(table)} written to {build}")


@cli.command()
@click.option("--build", required=True, type=EXISTING_DIR, help="A build folder with hard_video_IDs.txt and easy_video_IDs.txt.")
@click.option("--out", required=True, type=OUT_DIR, help="The folder to write.")
@click.option("--format", "layout", type=click.Choice(["wflwv", "300vw"]), default="wflwv", show_default=True, help="WFLW-V's layout, or 300-VW's (<ID>/vid.avi, <ID>/annot/000001.pts...: 68 points, docs/dataset.md).")
@click.option("--force", is_flag=True, help="Copy again videos already exported from the same files.")
def export(build: Path, out: Path, layout: str, force: bool) -> None:
    """Copy the listed videos, landmarks and boxes into the official WFLW-V layout, or 300-VW's."""
    from wflwv.export import export as run_export
    from wflwv.export_vw300 import export_vw300

    counts = (export_vw300 if layout == "300vw" else run_export)(build, out, force)
    click.echo(f"exported {', '.join(f'{n} {split}' for split, n in counts.items())} videos to {out}")


@cli.command()
@click.argument("root", type=EXISTING_DIR)
def verify(root: Path) -> None:
    """Check a WFLW-V folder (ours or the released one) or a 300-VW one; exit status 1 with one line per problem."""
    from wflwv.data.vw300 import is_vw300
    from wflwv.export import verify as run_verify
    from wflwv.export_vw300 import verify_vw300

    result = verify_vw300(root) if is_vw300(root) else run_verify(root)
    click.echo(result.summary())
    for problem in result.problems:
        click.echo(str(problem))
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.problems:
        sys.exit(1)


@cli.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", help="An LDEQ checkpoint path (wflwv's or the authors' .pth.tar), or a shipped config name (models/; then --checkpoint).")
@click.option("--method", help="NAME[:KEY=VALUE,...]: a landmark method (docs/methods.md) instead of --model, e.g. dlib68 or onnx:spec=model.toml.")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="The weights for a config name given as --model.")
@click.option("--out", type=OUT_FILE, help="Landmarks file, .parquet or .csv [default: VIDEO's name with .landmarks.parquet].")
@click.option("--overlay", type=OUT_FILE, help="Also write this mp4: the video with the landmarks drawn.")
@click.option("--rwr-iters", default=2, show_default=True, type=POSITIVE, help="RwR's cap on solver iterations per frame (a face segment's first frame gets the config's max_iters).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for MTCNN and the model: cpu, cuda or cuda:N.")
@click.option("--max-side", default=640, show_default=True, type=NON_NEGATIVE, help="Frames whose longer side exceeds this are detected downscaled to it (0: never).")
@click.option("--max-gap", default=10, show_default=True, type=NON_NEGATIVE, help="Frames without a detection that are filled by interpolation; longer gaps are marked as no face.")
@click.option("--smoothing", default=0.1, show_default=True, type=NON_NEGATIVE_FLOAT, help="Standard deviation in seconds of the Gaussian that smooths boxes over time (0: none).")
@click.option("--protocol", type=click.Choice(["wflwv", "released"]), default="wflwv", show_default=True, help="wflwv's own inference, or the authors' release's: its crop, solver conventions and the RwR cap on first frames too (docs/protocol.md).")
def predict(video: Path, model: str | None, method: str | None, checkpoint: Path | None, out: Path | None, overlay: Path | None, rwr_iters: int, device: str, max_side: int, max_gap: int, smoothing: float, protocol: str) -> None:
    """Landmarks for every frame of any video (MTCNN boxes, stabilised; LDEQ + RwR), streamed in constant memory."""
    from wflwv.boxes import BoxSettings, TrackSettings
    from wflwv.methods import method_from_text
    from wflwv.predict import PredictSettings, load_model, predict_video

    if (model is None) == (method is None):
        raise click.UsageError("give --model or --method")
    out = out or video.with_name(f"{video.stem}.landmarks.parquet")
    boxes = BoxSettings(device=device, max_side=max_side or None, smoothing=smoothing, track=TrackSettings(max_gap=max_gap))
    predictor = method_from_text(method) if method else load_model(model, checkpoint, device)
    summary = predict_video(video, predictor, out, overlay, PredictSettings(rwr_iters, device, boxes=boxes, protocol=protocol))
    click.echo(f"{video}: {summary}")
    click.echo(f"landmarks: {out}" + (f"\noverlay: {overlay}" if overlay else ""))


@cli.command("setup-method")
@click.argument("names", nargs=-1, required=True)
def setup_method(names: tuple[str, ...]) -> None:
    """Set up landmark methods that run in their own environment (mediapipe478: a virtualenv; faceapi68: npm packages) under $WFLWV_CACHE."""
    from wflwv.methods import method_factory

    for name in names:
        setup = getattr(method_factory(name), "setup", None)
        click.echo(setup() if setup else f"{name}: nothing to set up (its extra is a pip install)")


@cli.command("export-onnx")
@click.argument("checkpoint", type=IN_FILE)
@click.option("--out", required=True, type=OUT_DIR, help="Folder for <name>.onnx and its spec <name>.toml.")
def export_onnx(checkpoint: Path, out: Path) -> None:
    """Export a (non-DEQ) wflwv checkpoint to ONNX with the spec that `--method onnx:spec=...` runs it with (docs/methods.md)."""
    from wflwv.methods.export_onnx import export_onnx as export

    click.echo(f"spec: {export(checkpoint, out)}")


def main() -> None:
    try:
        sys.exit(cli.main(standalone_mode=False) or 0)
    except WflwvError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        click.echo(f"error: {' '.join(error.format_message().split())}", err=True)
        sys.exit(error.exit_code)
