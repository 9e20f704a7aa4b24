"""The `wflwv` command line. Each command is a thin shell over one stage module."""

import sys
from pathlib import Path

import click

from wflwv.errors import WflwvError

EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT_DIR = click.Path(file_okay=False, path_type=Path)


def comma_separated(kind: type):
    """A click callback reading "a,b,c" as a tuple of `kind`."""

    def parse(ctx, param, value: str) -> tuple:
        try:
            return tuple(kind(part) for part in value.split(","))
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind.__name__} values") from None

    return parse


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
@click.option("--seed", default=0, show_default=True, help="Seed of the initial weights, the augmentations and the batch order: ensemble members of one config differ by it.")
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
@click.option("--rwr-iters", default="1,2,3", show_default=True, callback=comma_separated(int), help="RwR's caps on solver iterations per frame (comma-separated): one leaderboard row each.")
@click.option("--ema", "ema_alphas", default="0.3,0.5,0.7", show_default=True, callback=comma_separated(float), help="EMA smoothing coefficients (comma-separated).")
@click.option("--nmf", "nmf_definition", type=click.Choice(["paper", "released"]), default="paper", show_default=True)
@click.option("--force", is_flag=True, help="Recompute predictions that already exist.")
def bench(videos: Path, checkpoint: Path, out: Path, slots: int, rwr_iters: tuple[int, ...], ema_alphas: tuple[float, ...], nmf_definition: str, force: bool) -> None:
    """Benchmark LDEQ cold start, LDEQ + RwR and LDEQ + EMA on WFLW-V-layout videos."""
    from wflwv.bench import BenchSettings, run_bench

    settings = BenchSettings(slots=slots, rwr_iters=rwr_iters, ema_alphas=ema_alphas, nmf_definition=nmf_definition)
    board = run_bench(videos, checkpoint, out, settings, force=force)
    click.echo(board.markdown)
    click.echo(f"\nleaderboard written to {out}")


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
