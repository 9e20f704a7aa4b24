"""Training: one loop for every landmark model, readable in one sitting.

The config's loss (MSE between predicted and true landmarks in crop units, as the paper, or the
heatmaps' negative log-likelihood of the true points), averaged over the stacks of a stacked model;
AdamW with a cosine schedule, a checkpoint in the released format after every epoch, resume from it
after an interruption. Solver iterations are logged for the models that report them (LDEQ).
"""

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from wflwv import distributed, io, schema
from wflwv.data.wflw import WflwStills
from wflwv.errors import WflwvError
from wflwv.metrics import nme
from wflwv.models import create_model, load_checkpoint, load_config, save_checkpoint
from wflwv.models.heatmaps import heatmap_nll
from wflwv.stills import Augmentation, StillCrops, predict_stills


def mse_loss(output, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.landmarks, targets)


def heatmap_nll_loss(output, targets: torch.Tensor) -> torch.Tensor:
    return heatmap_nll(output.heatmaps, targets)


# The MSE is the paper's. The likelihood trains the heatmaps directly: on the demo's small LDEQ it
# more than halves the test NME for the same epochs (see docs/rwr.md).
LOSSES = {"mse": mse_loss, "heatmap_nll": heatmap_nll_loss}
CHECKPOINT_NAME = "checkpoint.pth.tar"
TRAIN_RANGES = {
    "epochs": schema.POSITIVE, "batch_size": schema.POSITIVE, "warmup_steps": schema.NON_NEGATIVE, "loader_workers": schema.NON_NEGATIVE,
    "lr": schema.NON_NEGATIVE_FLOAT, "weight_decay": schema.NON_NEGATIVE_FLOAT,
}
HISTORY_NAME = "history.parquet"


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The [train] table of a model config."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    loader_workers: int = 0  # on a 2-core machine a loader process slows the model more than it helps
    loss: str = "mse"  # a key of LOSSES
    augmentation: Augmentation = Augmentation()

    @classmethod
    def from_config(cls, config: dict, epochs: int | None = None, source: str | Path | None = None) -> "TrainSettings":
        table = dict(config.get("train", {}))
        augmentation = table.pop("augmentation", {})
        try:
            settings = cls(**table, augmentation=Augmentation(**augmentation))
        except TypeError as error:
            raise WflwvError(source, f"invalid [train] table: {error}") from None
        if settings.loss not in LOSSES:
            raise WflwvError(source, f"unknown training loss {settings.loss!r} (known: {', '.join(LOSSES)})")
        settings = settings if epochs is None else dataclasses.replace(settings, epochs=epochs)
        for name, rule in TRAIN_RANGES.items():
            problem = rule.problem(getattr(settings, name))
            if problem:
                raise WflwvError(source, f"[train] {name}: {problem}")
        return settings


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train(data: Path, config_name: str, out: Path, epochs: int | None = None, seed: int = 0, force: bool = False, device: str | None = None, backend: str | None = None) -> Path:
    """Train the model of `config_name` on the stills in `data`; returns the checkpoint path.

    `seed` draws the initial weights, the augmentations and the batch order: ensemble members of one
    config differ by it. Launched by torchrun, this is one process of a data-parallel run (see
    wflwv.distributed and docs/cluster.md): the config's batch size is per process, and rank 0
    evaluates and writes.
    """
    with distributed.process_group(device or default_device(), backend) as (world, device):
        return train_in(world, data, config_name, out, epochs, seed, force, device)


def train_in(world: distributed.World, data: Path, config_name: str, out: Path, epochs: int | None, seed: int, force: bool, device: str) -> Path:
    config = load_config(config_name)
    settings = TrainSettings.from_config(config, epochs, source=config_name)
    stills = WflwStills(data)
    train_faces, test_faces = stills.faces("train"), stills.faces("test")
    if not train_faces or not test_faces:
        raise WflwvError(data, "training needs faces in both the train and the test annotation files")
    stills.check_images(train_faces + test_faces)
    torch.manual_seed(seed)

    model = create_model(config).to(device)
    dataset = StillCrops(stills, train_faces, model.args.im_size, settings.augmentation, seed)
    sampler = distributed.shard_sampler(dataset, world, seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size, shuffle=sampler is None, sampler=sampler,
        drop_last=len(sampler or dataset) > settings.batch_size,
        num_workers=settings.loader_workers, generator=torch.Generator().manual_seed(seed),
    )
    optimizer, schedule = optimizer_and_schedule(model, settings, total_steps=settings.epochs * len(loader))

    checkpoint_path = out / CHECKPOINT_NAME
    history = []
    if checkpoint_path.exists() and not force:
        history = resume(checkpoint_path, model, optimizer, schedule)
    replica = distributed.wrap(model, world, device)  # DDP starts every process from rank 0's weights

    with progress_bar(visible=world.is_main) as progress:
        for epoch in range(len(history), settings.epochs):
            dataset.epoch = epoch
            if sampler is not None:
                sampler.set_epoch(epoch)
            task = progress.add_task(f"epoch {epoch + 1}/{settings.epochs}", total=len(loader), loss=float("nan"), solver="")
            model.train()
            losses, iterations = [], []
            for images, targets in loader:
                output = replica(images.to(device))
                loss = training_loss(output, targets.to(device), LOSSES[settings.loss])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                if hasattr(output, "iterations"):  # equilibrium models report their solver's work
                    iterations.append(output.iterations.float().mean().item())
                solver_field = f"solver iters {np.mean(iterations[-20:]):.1f}" if iterations else ""
                progress.update(task, advance=1, loss=np.mean(losses[-20:]), solver=solver_field)
            epoch_loss = distributed.mean_over_processes(np.mean(losses), world, device)
            if world.is_main:
                test_nme = np.nanmean(nme(predict_stills(model, stills, test_faces, device=device), np.stack([f.landmarks for f in test_faces])))
                solver_row = {"solver_iterations": float(np.mean(iterations))} if iterations else {}
                history.append({"epoch": epoch + 1, "loss": epoch_loss} | solver_row | {"test_nme": float(test_nme)})
                solver_text = f", solver iterations {solver_row['solver_iterations']:.2f}" if solver_row else ""
                progress.console.print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.5f}{solver_text}, test NME {100 * test_nme:.2f}")
                save_checkpoint(checkpoint_path, model, extra={"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "history": history})
                io.save_parquet(out / HISTORY_NAME, pd.DataFrame(history))
            distributed.barrier(world)
    return checkpoint_path


def optimizer_and_schedule(model: torch.nn.Module, settings: TrainSettings, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its cosine schedule with linear warmup over `total_steps` optimizer steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_with_warmup(step, total_steps, settings.warmup_steps))


def training_loss(output, targets: torch.Tensor, loss: Callable = mse_loss) -> torch.Tensor:
    """`loss` of the output, averaged over its stacks where it has them: a stacked hourglass's intermediate supervision."""
    stacks = getattr(output, "stacks", (output,))
    return torch.stack([loss(stack, targets) for stack in stacks]).mean()


def resume(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule) -> list[dict]:
    """Load weights, optimizer and schedule state from a run's checkpoint; returns the epochs done."""
    restored, checkpoint = load_checkpoint(path)
    if vars(restored.args) != vars(model.args):
        raise WflwvError(path, "checkpoint was trained with another model config; use --force to start again")
    model.load_state_dict(restored.state_dict())
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    return list(checkpoint["history"])


def progress_bar(visible: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.5f}  {task.fields[solver]}"), TimeRemainingColumn(),
        disable=not visible,
    )
