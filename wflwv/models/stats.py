"""Model size figures for the leaderboards: parameters and multiply-adds of one forward pass."""

import torch
import torch.nn as nn


def param_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@torch.no_grad()
def multiply_adds(model: nn.Module, im_size: int) -> int:
    """Multiply-adds of the Conv2d and Linear layers in one forward pass of one (3, im_size, im_size) image.

    Counted by forward hooks, so a layer evaluated several times (LDEQ's cell, once per solver
    iteration) counts each time. Pooling, normalisation, activations and the soft-argmax are left out.
    """
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * kernel
        else:
            total += output.numel() * module.in_features

    hooks = [module.register_forward_hook(count) for module in model.modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters())
        model(torch.zeros(1, 3, im_size, im_size, dtype=parameter.dtype, device=parameter.device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total
