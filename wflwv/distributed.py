"""Data-parallel training under torchrun: one process per GPU (or CPU process), one model replica each.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK in every process it starts. With WORLD_SIZE > 1,
training joins the process group, wraps the model in DistributedDataParallel (gradients averaged
over processes at every step) and gives each process its own shard of every epoch. The batch size
of a config is per process: the global batch is batch_size x WORLD_SIZE. Without torchrun every
function here is a no-op, so a single process trains exactly as it always did.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started."""

    rank: int = 0
    local_rank: int = 0  # the rank on this machine: which GPU is ours
    size: int = 1

    @classmethod
    def from_environment(cls) -> "World":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates and writes the run folder; the others only train."""
        return self.rank == 0


@contextlib.contextmanager
def process_group(device: str, backend: str | None = None) -> Iterator[tuple[World, str]]:
    """Join torchrun's process group for the duration, if launched by it; yields the world and this process's device.

    On CUDA each process takes the GPU of its LOCAL_RANK; the default backend is NCCL on CUDA and
    gloo on the CPU. On leaving, every process waits for the others (rank 0 writes last).
    """
    world = World.from_environment()
    if not world.distributed or dist.is_initialized():
        yield world, device
        return
    if device.startswith("cuda"):
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend or ("nccl" if device.startswith("cuda") else "gloo"))
    try:
        yield world, device
        dist.barrier()
    finally:
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: str) -> torch.nn.Module:
    """The module to train: the model itself in one process, a DistributedDataParallel replica of it otherwise.

    The model keeps its own parameters (DDP wraps, it does not copy), so its state_dict stays the
    released format. On CUDA, BatchNorm becomes SyncBatchNorm, normalising over the global batch as
    one process would; PyTorch has no CPU SyncBatchNorm, so on the CPU each process normalises its
    own batch.
    """
    if not world.distributed:
        return model
    if device.startswith("cuda"):
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place: same model, same parameters
        return DistributedDataParallel(model, device_ids=[world.local_rank])
    return DistributedDataParallel(model)


def shard_sampler(dataset: Dataset, world: World, seed: int) -> DistributedSampler | None:
    """Each process's shuffled share of an epoch (call set_epoch every epoch), or None in one process.

    The shards of an epoch are disjoint and cover the dataset; when it does not divide evenly a few
    samples are drawn twice, so that every process takes the same number of steps.
    """
    return DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=seed) if world.distributed else None


def mean_over_processes(value: float, world: World, device: str) -> float:
    """The mean of a per-process number over all processes (the number itself in one process)."""
    if not world.distributed:
        return float(value)
    total = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / world.size


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
