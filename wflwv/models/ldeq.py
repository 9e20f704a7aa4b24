"""LDEQ: landmarks as the fixed point z* = f(z*, x) of a heatmap refinement, f(z, x) = sigma(h([z, x])).

The module layout, parameter names and shapes match the authors' released checkpoints, and the
model is built from their argparse options (see OPTIONS). Two released options change inference and
are followed as the release does: cell_learn_softargmax_beta (Cell) and take_one_less_inference_step
(the released protocol, LDEQ.forward). Options that only steered their training script or debugging
(JFB, verbose_solver, ...) are not interpreted.

At inference, wflwv's own protocol (the default) counts an iteration as one evaluation of f and
returns the last evaluation's output, so a cap of k costs exactly k evaluations. protocol="released"
follows the authors' release instead (it returns its lowest-residual iterate and then applies f once
more, its Anderson solver spends two evaluations before its first counted iteration, and its
soft-argmax divides each heatmap by 1e-4 + its sum): docs/protocol.md. In both, every sample of a
batch stops on its own.
"""

import argparse
import math
import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from wflwv.models.heatmaps import expected_points, normalize_heatmaps, probabilities
from wflwv.models.options import require_options
from wflwv.models.solvers import SOLVERS, STOP_MODES, FixedPointResult, anderson, fixed_point_iteration, released_solve, residual
from wflwv.schema import NON_NEGATIVE, NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT

OPTIONS = (
    "im_size", "heatmap_size", "n_keypoints", "cell_extra_latent_width", "z_width",
    "injection_width", "cell_base_width", "cell_width_increment", "cell_gn_groups", "cell_use_bn_for_explicit",
    "cell_norm", "cell_softargmax_beta",
    "solver", "max_iters", "anderson_m", "anderson_lam", "anderson_beta",
    "stop_mode", "rel_diff_target", "abs_diff_target",
    "z0_mode", "model_mode", "explicit_depth",
)  # fmt: skip
OPTIONAL = ("take_one_less_inference_step", "cell_learn_softargmax_beta")  # released options read where set
HOURGLASS_LEVELS = 4
RANGES = {
    **dict.fromkeys(("im_size", "heatmap_size", "n_keypoints", "z_width", "injection_width", "cell_base_width", "cell_gn_groups", "max_iters", "anderson_m", "explicit_depth"), POSITIVE),
    **dict.fromkeys(("cell_extra_latent_width", "cell_width_increment"), NON_NEGATIVE),
    **dict.fromkeys(("cell_softargmax_beta", "anderson_beta"), POSITIVE_FLOAT),
    **dict.fromkeys(("anderson_lam", "rel_diff_target", "abs_diff_target"), NON_NEGATIVE_FLOAT),
}
# How a model is evaluated: wflwv's own conventions, or the authors' release's (docs/protocol.md)
PROTOCOLS = ("wflwv", "released")
RELEASED_HEATMAP_EPS = 1e-4  # the release divides each heatmap by 1e-4 + its sum
NormFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class LDEQOutput:
    landmarks: torch.Tensor  # (B, n_keypoints, 2) in [0, 1] crop units
    z_star: torch.Tensor  # (B, z_width, D, D), detached: the next frame's z0 under RwR
    iterations: torch.Tensor  # (B,) long: evaluations of f per sample
    residual: torch.Tensor  # (B,) final residual per sample, in the config's stop mode
    heatmaps: torch.Tensor  # (B, n_keypoints, D, D) the landmarks' heatmaps as probabilities, differentiable in training
    jacobian: torch.Tensor | None = None  # (B,) in training when asked: the estimate of jacobian_frobenius at z*, differentiable
    spectral_radius: torch.Tensor | None = None  # (B,) in training when asked: the estimate of spectral_radius at z*, differentiable


def check_args(args: argparse.Namespace) -> None:
    """Raise ValueError unless args name a model this module builds."""
    require_options(args, OPTIONS)
    for name, rule in RANGES.items():
        if problem := rule.problem(getattr(args, name)):
            raise ValueError(f"{name}: {problem}")
    expected = {
        "cell_norm": ("softargmax",),
        "z0_mode": ("zeros",),
        "solver": tuple(SOLVERS),
        "stop_mode": STOP_MODES,
        "model_mode": ("implicit", "explicit"),
    }
    for name, allowed in expected.items():
        if getattr(args, name) not in allowed:
            raise ValueError(f"{name} = {getattr(args, name)!r} is not supported (use one of {', '.join(allowed)})")
    if args.im_size != 4 * args.heatmap_size:
        raise ValueError(f"im_size ({args.im_size}) must be 4 x heatmap_size ({args.heatmap_size}): the stem downsamples by 4")
    if args.heatmap_size % 2**HOURGLASS_LEVELS:
        raise ValueError(f"heatmap_size ({args.heatmap_size}) must be a multiple of {2**HOURGLASS_LEVELS} for the hourglass")
    if args.z_width != args.n_keypoints + args.cell_extra_latent_width:
        raise ValueError(f"z_width ({args.z_width}) must be n_keypoints ({args.n_keypoints}) + cell_extra_latent_width ({args.cell_extra_latent_width})")
    if args.injection_width % 4:
        raise ValueError(f"injection_width ({args.injection_width}) must be a multiple of 4")


def build_solver(args: argparse.Namespace, protocol: str = "wflwv") -> Callable[..., FixedPointResult]:
    """solve(f, z0, max_iters) with the solver, stop mode and tolerance of args, under a protocol's conventions."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}, expected one of {PROTOCOLS}")
    tol = args.rel_diff_target if args.stop_mode == "rel" else args.abs_diff_target
    if args.solver == "fpi":
        solve = functools.partial(fixed_point_iteration, tol=tol, stop_mode=args.stop_mode)
    else:
        solve = functools.partial(anderson, tol=tol, stop_mode=args.stop_mode, m=args.anderson_m, lam=args.anderson_lam, beta=args.anderson_beta)
    return solve if protocol == "wflwv" else functools.partial(released_solve, args.solver, solve)


class ConvBlock(nn.Module):
    """Conv2d with bias and same padding, then LeakyReLU, then a norm: the release's block order."""

    def __init__(self, in_width: int, out_width: int, kernel_size: int, stride: int = 1, norm: NormFactory | None = None, activation: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_width, out_width, kernel_size, stride, padding=(kernel_size - 1) // 2)
        self.act = nn.LeakyReLU() if activation else nn.Identity()
        self.norm = norm(out_width) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.conv(x)))


def stem(width: int) -> nn.Sequential:
    """Image to `width` features at a quarter of its side: conv 7x7 stride 2, conv 3x3, max pool, conv 3x3 (widths /4, /2, /1)."""
    return nn.Sequential(
        ConvBlock(3, width // 4, 7, stride=2, norm=nn.BatchNorm2d),
        ConvBlock(width // 4, width // 2, 3, norm=nn.BatchNorm2d),
        nn.MaxPool2d(2),
        ConvBlock(width // 2, width, 3, norm=nn.BatchNorm2d),
    )


class Hourglass(nn.Module):
    """Four levels down (average pooling), a bottleneck, four levels up (nearest upsampling, skips).

    Widths w, w+i, ..., w+4i from the top level down. Going down, level l has same{l} and
    upchan{l}; going up, the j-th level has downchan{2j-1} (narrow, then upsample), downchan{2j}
    (1x1 over [skip, upsampled]) and same{4+j} (5x5, residual): the release's names.
    """

    def __init__(self, base_width: int, width_increment: int, norm: NormFactory):
        super().__init__()
        widths = [base_width + level * width_increment for level in range(HOURGLASS_LEVELS + 1)]
        for level in range(HOURGLASS_LEVELS):
            self.add_module(f"same{level + 1}", ConvBlock(widths[level], widths[level], 3, norm=norm))
            self.add_module(f"upchan{level + 1}", ConvBlock(widths[level], widths[level + 1], 3, norm=norm))
        self.bottlneck = ConvBlock(widths[-1], widths[-1], 3, norm=norm)  # sic, the release's name
        for step, level in enumerate(reversed(range(HOURGLASS_LEVELS)), start=1):
            self.add_module(f"downchan{2 * step - 1}", ConvBlock(widths[level + 1], widths[level], 3, norm=norm))
            self.add_module(f"downchan{2 * step}", ConvBlock(2 * widths[level], widths[level], 1, norm=norm))
            self.add_module(f"same{HOURGLASS_LEVELS + step}", ConvBlock(widths[level], widths[level], 5, norm=norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in range(1, HOURGLASS_LEVELS + 1):
            x = self.get_submodule(f"same{level}")(x)
            skips.append(x)
            x = self.get_submodule(f"upchan{level}")(F.avg_pool2d(x, 2))
        x = self.bottlneck(x)
        for step in range(1, HOURGLASS_LEVELS + 1):
            x = F.interpolate(self.get_submodule(f"downchan{2 * step - 1}")(x), scale_factor=2, mode="nearest")
            x = self.get_submodule(f"downchan{2 * step}")(torch.cat((skips.pop(), x), dim=1))
            x = x + self.get_submodule(f"same{HOURGLASS_LEVELS + step}")(x)
        return x


class Cell(nn.Module):
    """f(z, x) = sigma(h([z, x])): a 1x1 conv over the concatenation, the hourglass, a 1x1 head."""

    def __init__(self, args: argparse.Namespace):
        super().__init__()
        use_batch_norm = args.cell_use_bn_for_explicit and args.model_mode == "explicit"
        norm = nn.BatchNorm2d if use_batch_norm else functools.partial(nn.GroupNorm, args.cell_gn_groups)
        self.tail = ConvBlock(args.z_width + args.injection_width, args.cell_base_width, 1, norm=norm)
        self.hourglass = Hourglass(args.cell_base_width, args.cell_width_increment, norm)
        self.head = ConvBlock(args.cell_base_width, args.z_width, 1, activation=False)
        self.beta = released_beta(args)
        self.z_width = args.z_width

    def forward(self, z: torch.Tensor, injection: torch.Tensor, injected: bool = False) -> torch.Tensor:
        """f(z, x), x the injection; or, with injected, f(z, x) from inject(x) (to float rounding)."""
        if injected:
            first = F.conv2d(z, self.tail.conv.weight[:, : self.z_width]).add_(injection)
            features = self.tail.norm(self.tail.act(first))
        else:
            features = self.tail(torch.cat((z, injection), dim=1))
        return normalize_heatmaps(self.head(self.hourglass(features)), self.beta)

    def inject(self, injection: torch.Tensor) -> torch.Tensor:
        """The injection's share of the first (1x1) convolution over [z, x], bias included.

        It is the same on every evaluation of a solve: computed once, it saves each evaluation the
        concatenation and the injection's part of that convolution (benchmarks/authors.py).
        """
        return F.conv2d(injection, self.tail.conv.weight[:, self.z_width :], self.tail.conv.bias)


def released_beta(args: argparse.Namespace) -> float:
    """sigma's factor: cell_softargmax_beta, or softplus of it where cell_learn_softargmax_beta is set.

    The release's "learned" beta is a view of a Parameter, a plain tensor that no module registers:
    it is in no state_dict and no optimiser moves it, so every heatmap keeps softplus(beta) for good.
    """
    beta = args.cell_softargmax_beta
    if not getattr(args, "cell_learn_softargmax_beta", False):
        return beta
    return beta if beta > 20 else math.log1p(math.exp(beta))  # torch's softplus, threshold 20, in plain floats (no tensor: meta builds)


class _ImplicitGradient(torch.autograd.Function):
    """Identity on z = f(z*, x) whose backward turns the incoming gradient g into u = J^T u + g, J = df/dz at z*.

    That u, sent back through the one tracked evaluation of f, is the implicit function theorem's
    gradient, so the graph holds one evaluation of f whatever the number of forward iterations.
    """

    @staticmethod
    def forward(ctx, z_next: torch.Tensor, z_star: torch.Tensor, solve: Callable, max_iters: int) -> torch.Tensor:
        ctx.z_next, ctx.z_star, ctx.solve, ctx.max_iters = z_next, z_star, solve, max_iters
        return z_next.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        def adjoint(u: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            every_row = len(rows) == len(grad)
            if not every_row:  # J^T is block-diagonal over samples: zeros in the other rows are inert
                u = torch.zeros_like(grad).index_copy_(0, rows, u)
            new_u = torch.autograd.grad(ctx.z_next, ctx.z_star, u, retain_graph=True)[0] + grad
            return new_u if every_row else new_u[rows]

        return ctx.solve(adjoint, torch.zeros_like(grad), ctx.max_iters).z, None, None, None


def jacobian_frobenius(fz: torch.Tensor, z: torch.Tensor, vectors: int) -> torch.Tensor:
    """Per sample, a differentiable Hutchinson estimate of ||df/dz||_F^2 / dim(z) at z, from fz = f(z) tracked.

    E ||v^T J||^2 = ||J||_F^2 for v ~ N(0, I): the mean over `vectors` Gaussian v of one vector-Jacobian
    product each, with the graph kept so that the estimate can be a loss (Bai, Koltun and Kolter,
    "Stabilizing Equilibrium Models by Jacobian Regularization", 2021).
    """
    total = fz.new_zeros(len(fz))
    for _ in range(vectors):
        vjp = torch.autograd.grad(fz, z, torch.randn_like(fz), create_graph=True, retain_graph=True)[0]
        total = total + vjp.flatten(1).pow(2).sum(dim=1)
    return total / (vectors * fz[0].numel())


def spectral_radius(fz: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
    """Per sample, a differentiable power-iteration estimate of the spectral radius of df/dz at z, from fz = f(z) tracked.

    J and J^T have the same eigenvalues, so the power iteration runs on J^T with one vector-Jacobian
    product a step: `steps` steps without a graph from a random vector, then one with it, whose
    growth ||J^T u|| / ||u|| is the estimate. Below 1 at z*, the fixed point attracts every start
    near it; `[train] spectral_weight` puts a hinge on it (docs/equilibrium.md).
    """
    unit = lambda v: v / v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))
    u = unit(torch.randn_like(fz))
    for _ in range(steps):
        u = unit(torch.autograd.grad(fz, z, u, retain_graph=True)[0])
    return torch.autograd.grad(fz, z, u, create_graph=True, retain_graph=True)[0].flatten(1).norm(dim=1)


@dataclass(frozen=True)
class DEQSolution(FixedPointResult):
    jacobian: torch.Tensor | None = None  # (B,) jacobian_frobenius at z*, when asked for in implicit training
    spectral_radius: torch.Tensor | None = None  # (B,) spectral_radius at z*, when asked for in implicit training


class DEQLayer(nn.Module):
    """Finds z* = cell(z*, x) from z0.

    Evaluation: the solver, without autograd. Training, model_mode "implicit": the solver without
    autograd, one tracked evaluation of the cell at z*, and the implicit gradient (a backward
    fixed-point solve with the same solver and cap); "explicit": explicit_depth tracked evaluations
    of the cell from z0, backpropagated through all of them. max_iters, when given, replaces the
    cap or the depth, and tol the config's tolerance (in its stop mode). jacobian_vectors > 0
    (implicit training only) adds the Hutchinson estimate of ||df/dz||_F^2 / dim(z) at z* from
    that many random vectors (jacobian_frobenius), spectral_steps > 0 the power-iteration estimate
    of its spectral radius after that many steps (spectral_radius). unrolled: max_iters (default the
    cap) tracked evaluations from z0, as explicit training, in any mode.
    """

    def __init__(self, cell: Cell, args: argparse.Namespace):
        super().__init__()
        self.cell = cell
        self.solve = build_solver(args)
        self.solve_released = build_solver(args, "released")
        self.model_mode, self.stop_mode = args.model_mode, args.stop_mode
        self.max_iters, self.explicit_depth = args.max_iters, args.explicit_depth

    def forward(self, injection: torch.Tensor, z0: torch.Tensor, max_iters: int | torch.Tensor | None = None, protocol: str = "wflwv", jacobian_vectors: int = 0, tol: float | None = None,
                spectral_steps: int = 0, unrolled: bool = False, extra_step: bool = True) -> DEQSolution:
        if (jacobian_vectors or spectral_steps) and not (self.training and self.model_mode == "implicit"):
            raise ValueError("the Jacobian estimates are computed in implicit training only")
        if unrolled:
            return self._unrolled(injection, z0, self.max_iters if max_iters is None else max_iters)
        if self.training and self.model_mode == "explicit":
            return self._unrolled(injection, z0, self.explicit_depth if max_iters is None else max_iters)
        max_iters = self.max_iters if max_iters is None else max_iters
        tolerance = {} if tol is None else {"tol": tol}
        # training solves with the release's arithmetic, so that trained weights do not move with a rounding change
        inputs, injected = (injection, False) if self.training else (self.cell.inject(injection), True)
        # the running rows' inputs; all of them (one frame at a time, always) without a copy per evaluation
        f = lambda z, rows: self.cell(z, inputs if len(rows) == len(inputs) else inputs[rows], injected=injected)
        if protocol == "released" and not self.training:
            solution = self.solve_released(f, z0, max_iters, extra_step, **tolerance)
        else:
            solution = self.solve(f, z0, max_iters, **tolerance)
        if not self.training:
            return DEQSolution(solution.z, solution.iterations, solution.residual)
        z_star = solution.z.detach().requires_grad_()
        fz = self.cell(z_star, injection)
        jacobian = jacobian_frobenius(fz, z_star, jacobian_vectors) if jacobian_vectors else None
        radius = spectral_radius(fz, z_star, spectral_steps) if spectral_steps else None
        z = _ImplicitGradient.apply(fz, z_star, self.solve, max_iters)
        return DEQSolution(z, solution.iterations, solution.residual, jacobian, radius)

    def _unrolled(self, injection: torch.Tensor, z0: torch.Tensor, depth: int) -> DEQSolution:
        z_previous, z = z0, self.cell(z0, injection)
        for _ in range(depth - 1):
            z_previous, z = z, self.cell(z, injection)
        iterations = torch.full((len(z),), depth, dtype=torch.long, device=z.device)
        return DEQSolution(z, iterations, residual(z.detach(), z_previous.detach(), self.stop_mode))


class LDEQ(nn.Module):
    """Stem (image -> injection x at heatmap resolution), DEQ layer, soft-argmax of the first n_keypoints heatmaps."""

    def __init__(self, args: argparse.Namespace):
        super().__init__()
        check_args(args)
        self.args = args
        self.tail = stem(args.injection_width)
        self.deq_layer = DEQLayer(Cell(args), args)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # the release's initialisation
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor, z0: torch.Tensor | None = None, max_iters: int | torch.Tensor | None = None, protocol: str = "wflwv", jacobian_vectors: int = 0, tol: float | None = None,
                spectral_steps: int = 0, unrolled: bool = False, take_one_less: bool | None = None) -> LDEQOutput:
        """images (B, 3, im_size, im_size), ImageNet-normalised; z0 None means zeros.

        max_iters overrides the config's cap (explicit training: its depth) for this call; at
        evaluation it may be a (B,) tensor of per-sample caps. protocol (one of PROTOCOLS) picks the
        evaluation's conventions; training ignores it. tol overrides the config's solver tolerance for
        this call (in both protocols); jacobian_vectors and spectral_steps: see DEQLayer. unrolled: max_iters
        plain evaluations of f from z0, with the gradient through each (as explicit training unrolls them),
        whatever model_mode. take_one_less (released protocol): skip the release's extra evaluation of f
        after the solve; None means the checkpoint's take_one_less_inference_step (the release's
        evaluation script replaces it under RwR by its own option, False by default: wflwv.inference).
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}, expected one of {PROTOCOLS}")
        injection = self.tail(images)
        if z0 is None:
            size = self.args.heatmap_size
            z0 = injection.new_zeros(len(images), self.args.z_width, size, size)
        if take_one_less is None:
            take_one_less = bool(getattr(self.args, "take_one_less_inference_step", False))
        solution = self.deq_layer(injection, z0, max_iters, protocol, jacobian_vectors, tol, spectral_steps, unrolled, extra_step=not take_one_less)
        eps = RELEASED_HEATMAP_EPS if protocol == "released" and not self.training else 0.0
        heatmaps = probabilities(solution.z[:, : self.args.n_keypoints], eps)  # normalised once, for the landmarks too
        return LDEQOutput(expected_points(heatmaps), solution.z.detach(), solution.iterations, solution.residual, heatmaps, solution.jacobian, solution.spectral_radius)
