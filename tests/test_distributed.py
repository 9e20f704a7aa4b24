import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DistributedSampler, default_collate

from test_train import still_set
from wflwv.configs import MODELS
from wflwv.models import CHECKPOINT_NAME, create_model, load_checkpoint, load_config
from wflwv.stills import StillCrops
from wflwv.train import HISTORY_NAME, LOSSES, TrainSettings, optimizer_and_schedule

REPO = Path(__file__).resolve().parents[1]
PROCESSES = 2
TINY_TRAIN = """
[train]
epochs = 1
batch_size = 4
lr = 2e-3
warmup_steps = 1
loss = "heatmap_nll"
"""


def tiny_config(path: Path) -> Path:
    """The demo LDEQ at batch 4 per process: 16 faces make two steps of a global batch of 8."""
    demo = (MODELS / "ldeq_demo.toml").read_text()
    path.write_text(demo[: demo.index("[train]")] + TINY_TRAIN)
    return path


def train_on_two_processes(stills: Path, config: Path, out: Path, *options: str) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(PROCESSES),
        "-m", "wflwv", "train", "--data", str(stills), "--config", str(config), "--out", str(out), "--backend", "gloo", *options,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def averaged_gradient_steps(stills, config: dict, seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """One process doing what data parallelism promises: every step, the mean of the gradients of
    each process's batch (forwarded on its own, as each process normalises its own batch), then one
    optimizer step on the same weights."""
    settings = TrainSettings.from_config(config)
    torch.manual_seed(seed)
    model = create_model(config).train()
    dataset = StillCrops(stills, stills.faces("train"), model.args.im_size, settings.augmentation, seed)
    shards = [list(DistributedSampler(dataset, PROCESSES, rank, shuffle=True, seed=seed)) for rank in range(PROCESSES)]
    steps = len(shards[0]) // settings.batch_size
    optimizer, schedule = optimizer_and_schedule(model, settings, total_steps=steps)
    for step in range(steps):
        gradients = []
        for shard in shards:
            images, targets = default_collate([dataset[i] for i in shard[step * settings.batch_size : (step + 1) * settings.batch_size]])
            model.zero_grad()
            LOSSES[settings.loss](model(images), targets).backward()
            gradients.append([parameter.grad.clone() for parameter in model.parameters()])
        for parameter, *shard_gradients in zip(model.parameters(), *gradients):
            parameter.grad = torch.stack(shard_gradients).mean(0)
        optimizer.step()
        schedule.step()
    return model, optimizer


def test_two_gloo_processes_train_like_one_process_averaging_their_gradients(tmp_path):
    stills = still_set(tmp_path / "stills", {"train": 16, "test": 2})
    config_path = tiny_config(tmp_path / "tiny.toml")
    train_on_two_processes(tmp_path / "stills", config_path, tmp_path / "run")
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted([CHECKPOINT_NAME, HISTORY_NAME])

    trained, checkpoint = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert not any(key.startswith("module.") for key in checkpoint["state_dict"])
    assert [row["epoch"] for row in checkpoint["history"]] == [1] and list(pd.read_parquet(tmp_path / "run" / HISTORY_NAME).epoch) == [1]
    assert checkpoint["schedule"]["last_epoch"] == 2  # two steps per process: the shards are halves, not copies

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the processes' arithmetic, so that the solver stops after the same iterations
    try:
        reference, optimizer = averaged_gradient_steps(stills, load_config(config_path), seed=0)
    finally:
        torch.set_num_threads(threads)
    saved_states = checkpoint["optimizer"]["state"]
    assert len(saved_states) == len(list(reference.parameters()))  # every parameter got a gradient, without find_unused_parameters
    for index, (name, parameter) in enumerate(reference.named_parameters()):
        # AdamW's first moment after its steps is a known mix of the gradients: it checks their size, not just their sign
        torch.testing.assert_close(saved_states[index]["exp_avg"], optimizer.state[parameter]["exp_avg"], rtol=1e-4, atol=1e-7, msg=lambda m: f"gradients of {name}: {m}")
        torch.testing.assert_close(trained.get_parameter(name), parameter, rtol=1e-4, atol=1e-6, msg=lambda m: f"weights of {name}: {m}")

    train_on_two_processes(tmp_path / "stills", config_path, tmp_path / "run", "--epochs", "2")  # both processes resume from epoch 1
    history = pd.read_parquet(tmp_path / "run" / HISTORY_NAME)
    assert list(history.epoch) == [1, 2] and history.loss.notna().all()
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)[1]["schedule"]["last_epoch"] == 4
