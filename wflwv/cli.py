"""The `wflwv` command line. Each command is a thin shell over one stage module."""

import functools
import sys
from pathlib import Path

import click

from wflwv.errors import WflwvError

EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT_DIR = click.Path(file_okay=False, path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wflwv")
def cli() -> None:
    """WFLW-V: build and run the benchmark for stable video facial landmarks (LDEQ + RwR)."""


@cli.command()
@click.option("--out", required=True, type=OUT_DIR, help="Output folder: stills/ (WFLW layout) and videos/ (WFLW-V layout).")
@click.option("--preset", default="demo", show_default=True, help="World size preset: demo or full.")
@click.option("--seed", default=0, show_default=True, help="Everything generated is a function of this seed.")
@click.option("--workers", default=2, show_default=True, help="Rendering processes.")
@click.option("--force", is_flag=True, help="Regenerate items that already exist.")
def synth(out: Path, preset: str, seed: int, workers: int, force: bool) -> None:
    """Generate the embedded synthetic face world (stills and videos with exact landmarks)."""
    from wflwv.synth import generate

    summary = generate(out, preset=preset, seed=seed, workers=workers, force=force)
    click.echo(f"synthetic world in {out}: {summary}")


@cli.command()
@click.option("--data", required=True, type=EXISTING_DIR, help="A WFLW-layout still set (WFLW_annotations/, WFLW_images/).")
@click.option("--config", default="ldeq_demo", show_default=True, help="Model config: a name in models/ or a TOML path.")
@click.option("--out", required=True, type=OUT_DIR, help="Run folder: checkpoint.pth.tar and the training log.")
@click.option("--epochs", type=int, help="Override the config's number of epochs.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Start again instead of resuming from the run folder's checkpoint.")
def train(data: Path, config: str, out: Path, epochs: int | None, seed: int, force: bool) -> None:
    """Train a landmark model on WFLW-format stills (resumes an interrupted run)."""
    from wflwv.train import train as run_training

    checkpoint = run_training(data, config, out, epochs=epochs, seed=seed, force=force)
    click.echo(f"checkpoint: {checkpoint}")


@cli.command()
@click.option("--videos", required=True, type=EXISTING_DIR, help="A WFLW-V-layout folder (videos/, landmarks/, bboxes/).")
@click.option("--model", "checkpoint", required=True, type=EXISTING_FILE, help="An LDEQ checkpoint (wflwv's or the authors').")
@click.option("--out", required=True, type=OUT_DIR, help="Where the leaderboard, predictions and plots go.")
@click.option("--slots", default=8, show_default=True, help="Video streams batched together.")
@click.option("--rwr-iters", default=2, show_default=True, help="RwR's cap on solver iterations per frame.")
@click.option("--ema", "ema_alphas", default="0.3,0.5,0.7", show_default=True, help="EMA smoothing coefficients (comma-separated).")
@click.option("--nmf", "nmf_definition", type=click.Choice(["paper", "released"]), default="paper", show_default=True)
@click.option("--force", is_flag=True, help="Recompute predictions that already exist.")
def bench(videos: Path, checkpoint: Path, out: Path, slots: int, rwr_iters: int, ema_alphas: str, nmf_definition: str, force: bool) -> None:
    """Benchmark LDEQ cold start, LDEQ + RwR and LDEQ + EMA on WFLW-V-layout videos."""
    from wflwv.bench import BenchSettings, run_bench

    settings = BenchSettings(
        slots=slots,
        rwr_iters=rwr_iters,
        ema_alphas=tuple(float(a) for a in ema_alphas.split(",")),
        nmf_definition=nmf_definition,
    )
    board = run_bench(videos, checkpoint, out, settings, force=force)
    click.echo(board.markdown)
    click.echo(f"\nleaderboard written to {out}")


@cli.command()
@click.option("--build", type=EXISTING_DIR, help="Build folder: reads videos/<ID>.mp4 (and landmarks/<ID>.npy), writes bboxes/<ID>.npy.")
@click.option("--from-landmarks", is_flag=True, help="Bootstrap round: boxes from the current labels landmarks/<ID>.npy instead of MTCNN.")
@click.option("--round", "round_number", default=1, show_default=True, help="Bootstrap round number (its own resumable stage, stages/boxes_roundN).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for MTCNN: cpu, cuda or cuda:N.")
@click.option("--batch-size", default=16, show_default=True, help="Frames per MTCNN call.")
@click.option("--max-side", default=640, show_default=True, help="Frames whose longer side exceeds this are detected downscaled to it (0: never).")
@click.option("--max-gap", default=10, show_default=True, help="Frames without a detection that are filled by interpolation; longer gaps are marked as no face.")
@click.option("--min-face", default=0.5, show_default=True, help="A video fails unless the main face is on at least this share of its frames.")
@click.option("--smoothing", default=0.1, show_default=True, help="Standard deviation in seconds of the Gaussian that smooths boxes over time (0: none).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), help="Box calibration JSON to use, or to write with --fit-calibration [default: models/box_calibration.json].")
@click.option("--fit-calibration", "fit_stills", type=EXISTING_DIR, help="Refit the calibration on this WFLW-layout still set, write it to --calibration and stop.")
@click.option("--split", default="train", show_default=True, help="Still split that --fit-calibration fits on.")
@click.option("--predictor", type=EXISTING_FILE, help="With --fit-calibration: fit the landmark map on this checkpoint's landmarks instead of the true ones.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Run videos in this process or on Ray.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Redo videos already done.")
def boxes(build: Path | None, from_landmarks: bool, round_number: int, device: str, batch_size: int, max_side: int, max_gap: int, min_face: float,
          smoothing: float, calibration: Path | None, fit_stills: Path | None, split: str, predictor: Path | None, executor: str, address: str | None, force: bool) -> None:
    """Face boxes for every video of a build folder: MTCNN, tracked, calibrated and smoothed, or bootstrapped from landmarks."""
    from wflwv.boxes import DEFAULT_CALIBRATION, BoxSettings, TrackSettings, fit_calibration, run_boxes
    from wflwv.boxes.stage import summary
    from wflwv.pipeline.stage import Executor

    calibration = calibration or DEFAULT_CALIBRATION
    if fit_stills is not None:
        predict = None
        if predictor is not None:
            from wflwv.models import load_checkpoint
            from wflwv.stills import predict_stills

            model, _ = load_checkpoint(predictor, device)
            predict = functools.partial(predict_stills, model.to(device), device=device)
        fitted = fit_calibration(fit_stills, split, device, predict=predict)
        fitted.save(calibration)
        click.echo(f"box calibration fitted on {fitted.faces} faces of {fit_stills} ({split}), written to {calibration}")
        return
    if build is None:
        raise click.UsageError("--build is required (or --fit-calibration to refit the calibration)")
    settings = BoxSettings(device, batch_size, max_side or None, min_face, smoothing, calibration, TrackSettings(max_gap=max_gap))
    manifest = run_boxes(build, settings, from_landmarks, round_number, Executor(executor, address), force)
    click.echo(summary(manifest))


@cli.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", required=True, help="An LDEQ checkpoint path (wflwv's or the authors' .pth.tar), or a config name in models/ (then --checkpoint).")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="The weights for a config name given as --model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Landmarks file, .parquet or .csv [default: VIDEO's name with .landmarks.parquet].")
@click.option("--overlay", type=click.Path(dir_okay=False, path_type=Path), help="Also write this mp4: the video with the landmarks drawn.")
@click.option("--rwr-iters", default=2, show_default=True, help="RwR's cap on solver iterations per frame (a face segment's first frame gets the config's max_iters).")
@click.option("--device", default="cpu", show_default=True, help="Torch device for MTCNN and the model: cpu, cuda or cuda:N.")
@click.option("--max-side", default=640, show_default=True, help="Frames whose longer side exceeds this are detected downscaled to it (0: never).")
@click.option("--max-gap", default=10, show_default=True, help="Frames without a detection that are filled by interpolation; longer gaps are marked as no face.")
@click.option("--smoothing", default=0.1, show_default=True, help="Standard deviation in seconds of the Gaussian that smooths boxes over time (0: none).")
def predict(video: Path, model: str, checkpoint: Path | None, out: Path | None, overlay: Path | None, rwr_iters: int, device: str, max_side: int, max_gap: int, smoothing: float) -> None:
    """Landmarks for every frame of any video (MTCNN boxes, stabilised; LDEQ + RwR), streamed in constant memory."""
    from wflwv.boxes import BoxSettings, TrackSettings
    from wflwv.predict import PredictSettings, load_model, predict_video

    out = out or video.with_name(f"{video.stem}.landmarks.parquet")
    boxes = BoxSettings(device=device, max_side=max_side or None, smoothing=smoothing, track=TrackSettings(max_gap=max_gap))
    summary = predict_video(video, load_model(model, checkpoint, device), out, overlay, PredictSettings(rwr_iters, device, boxes=boxes))
    click.echo(f"{video}: {summary}")
    click.echo(f"landmarks: {out}" + (f"\noverlay: {overlay}" if overlay else ""))


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
        error.show()
        sys.exit(error.exit_code)
