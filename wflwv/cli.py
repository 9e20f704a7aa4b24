"""The `wflwv` command line. Each command is a thin shell over one stage module."""

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
@click.option("--build", required=True, type=EXISTING_DIR, help="Build folder: videos/<ID>.mp4 and stabilised bboxes/<ID>.npy; landmarks/ and variance/ are written.")
@click.option("--members", multiple=True, type=EXISTING_FILE, help="A member checkpoint (repeat the option for each member).")
@click.option("--ensemble-dir", type=EXISTING_DIR, help="A folder of member run folders, <name>/checkpoint.pth.tar each.")
@click.option("--corrections", type=EXISTING_FILE, help="CSV video_id,member,first_frame,last_frame: members dropped on those frames (inclusive).")
@click.option("--batch-size", default=64, show_default=True, help="Frames per batch through each member.")
@click.option("--device", default="cpu", show_default=True, help="torch device; with --executor ray and cuda, each labelling worker gets one GPU.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Label in this process or on Ray.")
@click.option("--address", help="Ray: address of an existing cluster (default: start a local instance).")
@click.option("--force", is_flag=True, help="Relabel videos already labelled.")
def label(build: Path, members: tuple[Path, ...], ensemble_dir: Path | None, corrections: Path | None, batch_size: int, device: str, executor: str, address: str | None, force: bool) -> None:
    """Label every video with the ensemble's averaged heatmaps, and keep the ensemble's variance."""
    from wflwv.label import find_members, label as run_label
    from wflwv.pipeline.stage import Executor

    checkpoints = find_members(members, ensemble_dir)
    manifest = run_label(build, checkpoints, corrections, Executor(executor, address), device, batch_size, force)
    failed = manifest[manifest["status"] == "failed"]
    for reason in failed.get("reason", []):
        click.echo(f"failed: {reason}", err=True)
    click.echo(f"labelled {len(manifest) - len(failed)} of {len(manifest)} videos with {len(checkpoints)} members in {build}")
    if len(failed):
        sys.exit(1)


@cli.command()
@click.option("--build", required=True, type=EXISTING_DIR, help="A labelled build folder (landmarks/ and variance/).")
@click.option("--k", "k", required=True, type=int, help="Videos per split: the K highest scores are hard, the K lowest easy.")
def split(build: Path, k: int) -> None:
    """Rank the videos by ensemble variance; write hard_video_IDs.txt, easy_video_IDs.txt and split_scores.parquet."""
    from wflwv.split import split as run_split

    table = run_split(build, k)
    click.echo(f"{k} hard and {k} easy videos of {len(table)} written to {build}")


@cli.command()
@click.option("--build", required=True, type=EXISTING_DIR, help="A build folder with hard_video_IDs.txt and easy_video_IDs.txt.")
@click.option("--out", required=True, type=OUT_DIR, help="The WFLW-V folder to write.")
def export(build: Path, out: Path) -> None:
    """Copy the listed videos, landmarks and boxes into the official WFLW-V layout."""
    from wflwv.export import export as run_export

    counts = run_export(build, out)
    click.echo(f"exported {', '.join(f'{n} {split}' for split, n in counts.items())} videos to {out}")


@cli.command()
@click.argument("root", type=EXISTING_DIR)
def verify(root: Path) -> None:
    """Check a WFLW-V folder (ours or the released one); exit status 1 with one line per problem."""
    from wflwv.export import verify as run_verify

    result = run_verify(root)
    click.echo(result.summary())
    for problem in result.problems:
        click.echo(str(problem))
    if result.problems:
        sys.exit(1)


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
