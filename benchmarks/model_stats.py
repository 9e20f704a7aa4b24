"""Parameters and multiply-adds of every model config, and seconds per training step of the small ones.

    python benchmarks/model_stats.py [--batch 32] [--steps 5]

A training step is forward, loss (wflwv.train's), backward and an AdamW update on random crops at
the config's size; the median of `steps` timed steps after one warm-up step. Paper-scale configs
(im_size > 64) are not timed: on a CPU they take minutes per step.
"""

import argparse
import statistics
import time
import tomllib

import torch

from wflwv.configs import MODELS, shipped_names
from wflwv.models import create_model, load_config, multiply_adds, param_count
from wflwv.train import training_loss


def seconds_per_step(model: torch.nn.Module, im_size: int, batch: int, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, targets = torch.randn(batch, 3, im_size, im_size), torch.rand(batch, 98, 2)
    model.train()
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = training_loss(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    options = parser.parse_args()
    torch.manual_seed(0)
    print(f"| config | family | parameters | multiply-adds per crop | s per training step (batch {options.batch}) |")
    print("|---|---|---|---|---|")
    for name in shipped_names(MODELS):
        if "member" in tomllib.loads((MODELS / f"{name}.toml").read_text()):  # an ensemble config
            continue
        config = load_config(name)
        model = create_model(config)
        im_size = model.args.im_size
        step = f"{seconds_per_step(model, im_size, options.batch, options.steps):.2f}" if im_size <= 64 else "-"
        print(f"| {name} | {config['family']} | {param_count(model) / 1e6:.2f}M | {multiply_adds(model, im_size) / 1e9:.3f}G | {step} |", flush=True)


if __name__ == "__main__":
    main()
