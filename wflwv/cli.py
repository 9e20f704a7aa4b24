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
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Start again instead of resuming from the run folder's checkpoint.")
def train(data: Path, config: str, out: Path, epochs: int | None, seed: int, force: bool) -> None:
    """Train a landmark model on WFLW-format stills (resumes an interrupted run)."""
    from wflwv.train import train as run_training

    checkpoint = run_training(data, config, out, epochs=epochs, seed=seed, force=force)
    click.echo(f"checkpoint: {checkpoint}")


@cli.command()
@click.option("--model", "checkpoints", required=True, multiple=True, type=EXISTING_FILE, help="A checkpoint of any family (wflwv's, or the authors' LDEQ .pth.tar); repeat for several models.")
@click.option("--videos", type=EXISTING_DIR, help="A WFLW-V-layout folder (videos/, landmarks/, bboxes/, <split>_video_IDs.txt): the video leaderboard.")
@click.option("--stills", type=EXISTING_DIR, help="A WFLW still set, official layout (WFLW_annotations/, WFLW_images/) or pre-cropped (test.txt, test/, test_<subset>...): the still-image leaderboard.")
@click.option("--out", required=True, type=OUT_DIR, help="Where the leaderboards, predictions, plots and bench.json go.")
@click.option("--slots", default=8, show_default=True, help="Video streams batched together.")
@click.option("--rwr-iters", default="1,2,3", show_default=True, callback=comma_separated(int), help="RwR's caps on solver iterations per frame (comma-separated): one row each for every DEQ.")
@click.option("--filters", default="ema,one_euro,savgol,kalman", show_default=True, callback=comma_separated(str), help="Filters whose sweep of settings smooths every model's raw predictions online (comma-separated).")
@click.option("--nmf", "nmf_definition", type=click.Choice(["paper", "released"]), default="paper", show_default=True, help="NMF definition: the paper's, or the authors' released NMJ.")
@click.option("--norm", type=click.Choice(["interocular", "interpupil", "diagonal"]), default="interocular", show_default=True, help="NME normalisation.")
@click.option("--device", default="cpu", show_default=True, help="Torch device the models run on (cpu, cuda, cuda:1...).")
@click.option("--force", is_flag=True, help="Recompute predictions that already exist.")
def bench(checkpoints: tuple[Path, ...], videos: Path | None, stills: Path | None, out: Path, slots: int, rwr_iters: tuple[int, ...], filters: tuple[str, ...], nmf_definition: str, norm: str, device: str, force: bool) -> None:
    """Leaderboards of one or more models: videos (raw, RwR, every filter's sweep) and/or stills (NME, FR10, AUC10, cost)."""
    from wflwv.bench import BenchSettings, run_bench
    from wflwv.filters import FILTERS
    from wflwv.report import video_summary

    if videos is None and stills is None:
        raise click.UsageError("give --videos, --stills or both")
    unknown = [name for name in filters if name not in FILTERS]
    if unknown:
        raise click.BadParameter(f"unknown filter {unknown[0]!r}, expected some of {', '.join(FILTERS)}", param_hint="--filters")
    settings = BenchSettings(slots=slots, rwr_iters=rwr_iters, filters=filters, nmf_definition=nmf_definition, norm=norm, device=device)
    boards = run_bench(list(checkpoints), out, videos=videos, stills=stills, settings=settings, force=force)
    if "stills" in boards:
        click.echo(boards["stills"].markdown)
    if "videos" in boards:
        click.echo(video_summary(boards["videos"]).markdown)
    click.echo(f"leaderboards written to {out}; see them with: wflwv report {out}")


@cli.command()
@click.argument("run", type=EXISTING_DIR)
def report(run: Path) -> None:
    """Write RUN/report.html from a `wflwv bench` output folder: leaderboards, plots, overlay GIFs of the hardest videos."""
    from wflwv.report import write_report

    click.echo(f"report: {write_report(run)}")


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
