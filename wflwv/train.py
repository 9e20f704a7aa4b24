"""Training: one loop for every landmark model, readable in one sitting.

The config's loss (MSE between predicted and true landmarks in crop units, as the paper, or the
heatmaps' negative log-likelihood of the true points), averaged over the stacks of a stacked model;
AdamW with a cosine schedule, a checkpoint in the released format after every epoch, resume from it
after an interruption. Solver iterations are logged for the models that report them (LDEQ).

A resume is exact: the checkpoint records what the run is (the config with its [train] settings, a
digest of the stills, the seed), and a run folder is resumed only by the same run (a larger
`--epochs` continues it); it also holds every random state (torch's, CUDA's, numpy's, Python's and
the data loader's shuffling generator; the augmentations are drawn from (seed, epoch, index)), so a
run killed and resumed ends with the same weights as one never interrupted.
"""

import dataclasses
import json
import math
import random
import time
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
from wflwv.models import CHECKPOINT_NAME, create_model, load_checkpoint, load_config, save_checkpoint
from wflwv.models.heatmaps import heatmap_nll, soft_argmax
from wflwv.stills import Augmentation, StillCrops, predict_stills


def mse_loss(output, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.landmarks, targets)


def heatmap_nll_loss(output, targets: torch.Tensor) -> torch.Tensor:
    return heatmap_nll(output.heatmaps, targets)


# The MSE is the paper's. The likelihood trains the heatmaps directly: on the demo's small LDEQ it
# more than halves the test NME for the same epochs (see docs/rwr.md).
LOSSES = {"mse": mse_loss, "heatmap_nll": heatmap_nll_loss}
TRAIN_RANGES = {
    "epochs": schema.POSITIVE, "batch_size": schema.POSITIVE, "warmup_steps": schema.NON_NEGATIVE, "loader_workers": schema.NON_NEGATIVE,
    "lr": schema.NON_NEGATIVE_FLOAT, "weight_decay": schema.NON_NEGATIVE_FLOAT,
    "jacobian_weight": schema.NON_NEGATIVE_FLOAT, "warm_start_weight": schema.NON_NEGATIVE_FLOAT, "warm_start_epochs": schema.NON_NEGATIVE,
    "spectral_weight": schema.NON_NEGATIVE_FLOAT, "spectral_target": schema.NON_NEGATIVE_FLOAT, "spectral_steps": schema.POSITIVE,
    "spectral_epochs": schema.NON_NEGATIVE, "jacobian_vectors": schema.POSITIVE, "consistency_weight": schema.NON_NEGATIVE_FLOAT,
    "memory_weight": schema.NON_NEGATIVE_FLOAT, "memory_floor": schema.NON_NEGATIVE_FLOAT, "memory_epochs": schema.NON_NEGATIVE,
}
MEMORY_EVALUATIONS = 2  # RwR (2 it)'s evaluations of f
HISTORY_NAME = "history.parquet"
SPECTRAL_SOLVES = ("first", "warm_start")


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
    # Equilibrium terms, for an implicitly trained LDEQ (docs/equilibrium.md). jacobian_weight times
    # the Hutchinson estimate of ||df/dz||_F^2 / dim(z) at z* from jacobian_vectors random vectors;
    # warm_start_weight times the loss of a second solve started from another face's fixed point
    # (its batch neighbour's), so that a foreign start must reach the same, right, landmarks;
    # warm_start_epochs: that term in the last this many epochs only (0: every epoch);
    # spectral_weight times the excess over spectral_target of the spectral radius of df/dz at z*,
    # estimated by spectral_steps steps of power iteration, in the last spectral_epochs epochs;
    # spectral_solve: the solve whose fixed point the spectral term bounds, "first" (the batch's) or
    # "warm_start" (the warm-start term's, in the epochs where both terms are on);
    # warm_start_augmentation: the warm-start solve sees the batch degraded once more by it (blur,
    # occlusion, low light), images as hard as the hard videos' frames; consistency_weight times the
    # squared distance between the warm-start solve's landmarks and a cold solve's of the same images,
    # so that both starts reach one fixed point even where neither finds the face; memory_weight times
    # how far under memory_floor the share of a near start kept by two evaluations of f falls
    # (memory_kept), in the last memory_epochs epochs, so that RwR keeps some of the previous frame.
    jacobian_weight: float = 0.0
    jacobian_vectors: int = 1
    warm_start_weight: float = 0.0
    warm_start_epochs: int = 0
    spectral_weight: float = 0.0
    spectral_target: float = 0.5
    spectral_steps: int = 5
    spectral_epochs: int = 0
    spectral_solve: str = "first"  # a key of SPECTRAL_SOLVES
    consistency_weight: float = 0.0
    memory_weight: float = 0.0
    memory_floor: float = 0.15
    memory_epochs: int = 0
    augmentation: Augmentation = Augmentation()
    warm_start_augmentation: Augmentation | None = None

    @classmethod
    def from_config(cls, config: dict, epochs: int | None = None, source: str | Path | None = None) -> "TrainSettings":
        table = dict(config.get("train", {}))
        augmentation, harder = table.pop("augmentation", {}), table.pop("warm_start_augmentation", None)
        try:
            settings = cls(**table, augmentation=Augmentation(**augmentation), warm_start_augmentation=None if harder is None else Augmentation(**harder))
        except (TypeError, ValueError) as error:
            raise WflwvError(source, f"invalid [train] table: {error}") from None
        if settings.spectral_solve not in SPECTRAL_SOLVES:
            raise WflwvError(source, f"[train] spectral_solve: {settings.spectral_solve!r} is none of {', '.join(SPECTRAL_SOLVES)}")
        if settings.warm_start_augmentation is not None and not (warm_solve_on(settings) or settings.memory_weight):
            raise WflwvError(source, "[train] warm_start_augmentation needs a term that solves it: warm_start_weight, consistency_weight, "
                                     "memory_weight or spectral_weight with spectral_solve = \"warm_start\"")
        if settings.loss not in LOSSES:
            raise WflwvError(source, f"unknown training loss {settings.loss!r} (known: {', '.join(LOSSES)})")
        settings = settings if epochs is None else dataclasses.replace(settings, epochs=epochs)
        for name, rule in TRAIN_RANGES.items():
            problem = rule.problem(getattr(settings, name))
            if problem:
                raise WflwvError(source, f"[train] {name}: {problem}")
        return settings


def warm_solve_on(settings: TrainSettings) -> bool:
    """Whether a term needs the warm-start solve: its own loss (warm_start_weight), the consistency term's comparison or
    the spectral term's radius at its fixed point. Each term can so be on alone, the solve run for it without its loss."""
    return bool(settings.warm_start_weight or settings.consistency_weight or (settings.spectral_weight and settings.spectral_solve == "warm_start"))


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train(data: Path, config_name: str, out: Path, epochs: int | None = None, seed: int = 0, force: bool = False, device: str | None = None, backend: str | None = None,
          train_splits: tuple[str, ...] = ("train",)) -> Path:
    """Train the model of `config_name` on the stills in `data`; returns the checkpoint path.

    `seed` draws the initial weights, the augmentations and the batch order: ensemble members of one
    config differ by it. Launched by torchrun, this is one process of a data-parallel run (see
    wflwv.distributed and docs/cluster.md): the config's batch size is per process, and rank 0
    evaluates and writes. The model trains on the faces of `train_splits` (the paper's oracle members:
    train and test); the NME it logs is always the test split's.
    """
    with distributed.process_group(device or default_device(), backend) as (world, device):
        return train_in(world, data, config_name, out, epochs, seed, force, device, train_splits)


def train_in(world: distributed.World, data: Path, config_name: str, out: Path, epochs: int | None, seed: int, force: bool, device: str,
             train_splits: tuple[str, ...] = ("train",)) -> Path:
    config = load_config(config_name)
    settings = TrainSettings.from_config(config, epochs, source=config_name)
    stills = WflwStills(data)
    train_faces, test_faces = [face for split in train_splits for face in stills.faces(split)], stills.faces("test")
    if not train_faces or not test_faces:
        raise WflwvError(data, "training needs faces in both the train and the test annotation files")
    stills.check_images(train_faces + test_faces)
    torch.manual_seed(seed)
    run = run_record(config, settings, stills, train_faces + test_faces, seed)

    model = create_model(config).to(device)
    check_equilibrium_terms(model, settings, config_name)
    dataset = StillCrops(stills, train_faces, model.args.im_size, settings.augmentation, seed, settings.warm_start_augmentation)
    sampler = distributed.shard_sampler(dataset, world, seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size, shuffle=sampler is None, sampler=sampler,
        drop_last=len(sampler or dataset) > settings.batch_size,
        num_workers=settings.loader_workers, generator=torch.Generator().manual_seed(seed),
    )
    optimizer, schedule = optimizer_and_schedule(model, settings, total_steps=settings.epochs * len(loader))

    checkpoint_path = out / CHECKPOINT_NAME
    if world.is_main:
        io.remove_partials(out)  # what a killed run was writing
    history = []
    if checkpoint_path.exists() and not force:
        history = resume(checkpoint_path, run, model, optimizer, schedule, loader.generator)
    replica = distributed.wrap(model, world, device)  # DDP starts every process from rank 0's weights

    with progress_bar(visible=world.is_main) as progress:
        for epoch in range(len(history), settings.epochs):
            started = time.perf_counter()
            dataset.epoch = epoch
            if sampler is not None:
                sampler.set_epoch(epoch)
            task = progress.add_task(f"epoch {epoch + 1}/{settings.epochs}", total=len(loader), loss=float("nan"), solver="")
            model.train()
            losses, iterations, measures = [], [], {}
            for images, *harder, targets in loader:
                images, targets = images.to(device), targets.to(device)
                output = replica(images, **estimate_options(settings, epoch, "first"))
                warm_images = harder[0].to(device) if harder else images
                terms, measured = equilibrium_terms(replica, warm_images, targets, output, settings, epoch)
                loss = training_loss(output, targets, LOSSES[settings.loss]) + terms
                for name, value in measured.items():
                    measures.setdefault(name, []).append(value)
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
                solver_row |= {name: float(np.mean(values)) for name, values in measures.items()}
                history.append({"epoch": epoch + 1, "loss": epoch_loss} | solver_row | {"test_nme": float(test_nme), "seconds": time.perf_counter() - started})
                solver_text = f", solver iterations {solver_row['solver_iterations']:.2f}" if solver_row else ""
                progress.console.print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.5f}{solver_text}, test NME {100 * test_nme:.2f}")
                state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "random": random_states(loader.generator)}
                save_checkpoint(checkpoint_path, model, extra=state | {"history": history, "run": json.dumps(run, sort_keys=True)})
                io.save_parquet(out / HISTORY_NAME, pd.DataFrame(history))
            distributed.barrier(world)
    return checkpoint_path


def training_seconds(run: Path) -> float:
    """The wall seconds a run's epochs took, as its history records them (in whichever processes trained them);
    NaN where an epoch was trained before epochs were timed."""
    history = pd.read_parquet(run / HISTORY_NAME)
    return float(history["seconds"].sum(min_count=len(history))) if "seconds" in history else math.nan


def optimizer_and_schedule(model: torch.nn.Module, settings: TrainSettings, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its cosine schedule with linear warmup over `total_steps` optimizer steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_with_warmup(step, total_steps, settings.warmup_steps))


def training_loss(output, targets: torch.Tensor, loss: Callable = mse_loss) -> torch.Tensor:
    """`loss` of the output, averaged over its stacks where it has them: a stacked hourglass's intermediate supervision."""
    stacks = getattr(output, "stacks", (output,))
    return torch.stack([loss(stack, targets) for stack in stacks]).mean()


def check_equilibrium_terms(model: torch.nn.Module, settings: TrainSettings, source: str) -> None:
    weighted = settings.jacobian_weight or warm_solve_on(settings) or settings.spectral_weight or settings.memory_weight
    if weighted and getattr(getattr(model, "args", None), "model_mode", None) != "implicit":
        raise WflwvError(source, "jacobian_weight, warm_start_weight, spectral_weight, consistency_weight and memory_weight need an LDEQ with model_mode = \"implicit\"")


def in_last_epochs(epoch: int, count: int, settings: TrainSettings) -> bool:
    """Whether epoch `epoch` (from 0) is one of the last `count` (0: all of them)."""
    return epoch >= settings.epochs - (count or settings.epochs)


def estimate_options(settings: TrainSettings, epoch: int, solve: str) -> dict:
    """The Jacobian estimates that `solve` ("first" or "warm_start") computes in epoch `epoch` for the equilibrium terms on in it."""
    spectral = settings.spectral_weight and settings.spectral_solve == solve and in_last_epochs(epoch, settings.spectral_epochs, settings)
    jacobian = settings.jacobian_weight and solve == "first"
    return ({"jacobian_vectors": settings.jacobian_vectors} if jacobian else {}) | ({"spectral_steps": settings.spectral_steps} if spectral else {})


def spectral_term(solve, settings: TrainSettings) -> torch.Tensor | float:
    """The spectral hinge of a solve that estimated its radius; 0 for one that did not."""
    radius = getattr(solve, "spectral_radius", None)
    return 0.0 if radius is None else settings.spectral_weight * (radius - settings.spectral_target).clamp_min(0).mean()


def equilibrium_terms(replica: torch.nn.Module, warm_images: torch.Tensor, targets: torch.Tensor, output, settings: TrainSettings, epoch: int) -> tuple[torch.Tensor, dict]:
    """The weighted equilibrium terms of one batch in epoch `epoch` (from 0; see TrainSettings), zero when no weight is set,
    and what they measured, for the history: the Jacobian estimates of the solves that made them and the disagreement.
    The warm-start solve is of `warm_images`: the batch's harder view, or the batch itself."""
    total, measured = torch.zeros((), device=targets.device), estimates(output)
    if settings.jacobian_weight:
        total = total + settings.jacobian_weight * output.jacobian.mean()
    total = total + spectral_term(output, settings)
    if warm_solve_on(settings) and in_last_epochs(epoch, settings.warm_start_epochs, settings):
        warm = replica(warm_images, z0=output.z_star.roll(1, dims=0), **estimate_options(settings, epoch, "warm_start"))
        if settings.warm_start_weight:
            total = total + settings.warm_start_weight * training_loss(warm, targets, LOSSES[settings.loss])
        total = total + spectral_term(warm, settings)
        measured |= estimates(warm)
        if settings.consistency_weight:
            disagreement = landmark_disagreement(warm, replica(warm_images))
            total = total + settings.consistency_weight * disagreement
            measured["disagreement"] = disagreement.item()
    if settings.memory_weight and in_last_epochs(epoch, settings.memory_epochs, settings):
        kept = memory_kept(replica, warm_images, output.z_star)
        total = total + settings.memory_weight * (settings.memory_floor - kept).clamp_min(0)
        measured["memory_kept"] = kept.item()
    return total, measured


def memory_kept(replica: torch.nn.Module, images: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The least-squares share m of the start's landmark offset from the images' fixed point that two evaluations of f
    from `start` keep (l_2 - l* = m (l_0 - l*), over the batch), differentiable through the two evaluations: the memory
    the bench measures for RwR (2 it), with the start a near one, e.g. the fixed point of an easier view of the same face."""
    with torch.no_grad():
        fixed = replica(images, z0=start).landmarks
    kept = replica(images, z0=start, max_iters=MEMORY_EVALUATIONS, unrolled=True).landmarks - fixed
    offset = soft_argmax(start[:, : kept.shape[1]]) - fixed
    return (kept * offset).sum() / offset.pow(2).sum().clamp_min(1e-12)


def estimates(solve) -> dict:
    """The batch means of the Jacobian estimates a solve made (see estimate_options)."""
    return {name: value.mean().item() for name in ("jacobian", "spectral_radius") if (value := getattr(solve, name, None)) is not None}


def landmark_disagreement(one, other) -> torch.Tensor:
    """The mean squared distance, in heatmap pixels, between the landmarks of two solves of the same images."""
    side = one.heatmaps.shape[-1]
    return (side * (one.landmarks - other.landmarks)).pow(2).sum(dim=-1).mean()


def trained_part(config: dict) -> dict:
    """The tables of a model config that training reads: family, [args] and [train] (not ldeq_demo's [ablation])."""
    return {key: config[key] for key in ("family", "args", "train") if key in config}


def run_record(config: dict, settings: TrainSettings, stills: WflwStills, faces: list, seed: int) -> dict:
    """What a run is, as its checkpoint records it: the model (family and [args]) and [train] settings (all but
    the number of epochs, which may grow), a digest of the stills (annotation files and images) and the seed."""
    train_table = {key: value for key, value in dataclasses.asdict(settings).items() if key != "epochs"}
    files = [stills.annotation_path(split) for split in ("train", "test")] + sorted({stills.image_path(face) for face in faces})
    data = io.digest([[str(path.relative_to(stills.root)), path] for path in files])
    return json.loads(json.dumps({"config": trained_part(config) | {"train": train_table}, "data": data, "seed": seed}))  # tuples as lists, as the checkpoint holds it


def random_states(loader_generator: torch.Generator) -> dict:
    """Every random state a training step draws from; numpy's as plain lists, which a weights-only load accepts."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, keys.tolist(), position, has_gauss, cached],
        "python": random.getstate(),
        "loader": loader_generator.get_state(),
    }


def restore_random_states(states: dict, loader_generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    loader_generator.set_state(states["loader"])


def resume(path: Path, run: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule, loader_generator: torch.Generator) -> list[dict]:
    """Load weights, optimizer, schedule and random states from a run's checkpoint; returns the epochs done.
    A checkpoint of another run (config, data or seed) is refused, naming the first difference."""
    restored, checkpoint = load_checkpoint(path)
    if "run" not in checkpoint or "random" not in checkpoint:
        raise WflwvError(path, "checkpoint does not record its run (config, data, seed, random states), so it cannot be resumed exactly; use --force to start again")
    difference = first_difference(with_later_settings(json.loads(checkpoint["run"])), run)
    if difference:
        raise WflwvError(path, f"checkpoint is of another run: {difference}; use --force to start again")
    model.load_state_dict(restored.state_dict())
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    restore_random_states(checkpoint["random"], loader_generator)
    return list(checkpoint["history"])


def with_later_settings(saved: dict) -> dict:
    """A checkpoint's run record with the [train] settings added to wflwv since it was written at their defaults:
    the training it ran, as those settings did not exist then."""
    defaults = json.loads(json.dumps(dataclasses.asdict(TrainSettings())))
    config = saved.get("config", {})
    if isinstance(config.get("train"), dict):
        config["train"] = {key: value for key, value in defaults.items() if key != "epochs"} | config["train"]
    return saved


def first_difference(saved, asked, where: str = "") -> str | None:
    """The first key whose value differs between two JSON values, as `key: saved in the checkpoint, asked now`."""
    if isinstance(saved, dict) and isinstance(asked, dict):
        for key in sorted(set(saved) | set(asked)):
            difference = first_difference(saved.get(key), asked.get(key), f"{where}.{key}" if where else key)
            if difference:
                return difference
        return None
    if saved == asked:
        return None
    described = {"data": "the stills' files differ"}.get(where)
    return f"{where}: {described}" if described else f"{where} {saved!r} in the checkpoint, {asked!r} now"


def progress_bar(visible: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.5f}  {task.fields[solver]}"), TimeRemainingColumn(),
        disable=not visible,
    )
