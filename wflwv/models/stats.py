"""Model size figures: parameters, and multiply-adds counted once for the leaderboards and the benchmarks alike."""

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from wflwv.models.ldeq import LDEQ


def param_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def multiply_adds(model: nn.Module, im_size: int, iterations: int | None = None) -> int:
    """Multiply-adds of one forward pass of one (3, im_size, im_size) image.

    A DEQ counts its stem once and its cell once per solver iteration: `iterations` of them (default
    its config's max_iters, the cap a cold start may use up).
    """
    per_image, per_iteration = forward_cost(model, im_size)
    return per_image + (model.args.max_iters if iterations is None else iterations) * per_iteration if per_iteration else per_image


@torch.no_grad()
def forward_cost(model: nn.Module, im_size: int) -> tuple[int, int]:
    """(multiply-adds once per image, per solver iteration) of one image; 0 per iteration for a model that is not a DEQ.

    Counted by torch's FlopCounterMode (convolutions, matrix products; normalisation, activations,
    pooling and the soft-argmax are left out) on zero inputs; a DEQ's stem and one evaluation of its
    cell are counted apart, so that a frame's count follows the iterations it actually took.
    """
    parameter = next(model.parameters())
    image = torch.zeros(1, 3, im_size, im_size, dtype=parameter.dtype, device=parameter.device)
    deq = isinstance(model, LDEQ)
    was_training = model.training
    try:
        model.eval()
        with FlopCounterMode(display=False) as counter:
            output = model.tail(image) if deq else model(image)
        if not deq:
            return counter.get_total_flops() // 2, 0
        per_image = counter.get_total_flops() // 2
        z = output.new_zeros(1, model.args.z_width, model.args.heatmap_size, model.args.heatmap_size)
        with FlopCounterMode(display=False) as counter:
            model.deq_layer.cell(z, output)
        return per_image, counter.get_total_flops() // 2
    finally:
        model.train(was_training)
