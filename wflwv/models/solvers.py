"""Fixed-point solvers for z = f(z) with per-sample stopping: fixed-point iteration and Anderson acceleration.

Written here rather than taken from torchdeq 0.1.0, whose solvers stop a batch only when its worst
sample meets the tolerance and keep updating the samples that already have, so a sample's result
depends on its batch-mates. The video scheduler batches frames of unrelated videos with different
iteration caps, so here each sample stops on its own: once it meets the tolerance or its cap it is
frozen and f is no longer evaluated on it.

f is called as f(z, rows): z holds the still-active samples and rows (a long tensor) their indices
in the batch, so f can pick its per-sample inputs. One iteration is one evaluation of f, and the
result is that evaluation's output: after k iterations from z0 the solution is f applied k times
(plain iteration) or to k Anderson iterates. The residual is that of the last input x:
||f(x) - x|| ("abs") or ||f(x) - x|| / ||f(x)|| ("rel"), an L2 norm over each whole sample.
Solvers never record autograd history.
"""

from dataclasses import dataclass
from typing import Callable

import torch

FixedPointFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
STOP_MODES = ("rel", "abs")


@dataclass(frozen=True)
class FixedPointResult:
    z: torch.Tensor  # (B, ...) the solution
    iterations: torch.Tensor  # (B,) long: evaluations of f spent on each sample
    residual: torch.Tensor  # (B,) the stop mode's residual of each sample's last iterate


def residual(fz: torch.Tensor, z: torch.Tensor, stop_mode: str) -> torch.Tensor:
    """Per-sample ||f(z) - z||, divided by ||f(z)|| in "rel" mode."""
    return _residual(fz - z, fz, stop_mode)


@torch.no_grad()
def anderson(
    f: FixedPointFunction,
    z0: torch.Tensor,
    max_iters: int | torch.Tensor,
    tol: float,
    stop_mode: str = "rel",
    m: int = 6,
    lam: float = 1e-4,
    beta: float = 1.0,
    skip: int = 0,
    keep_lowest: bool = False,
    keep_input: bool = False,
) -> FixedPointResult:
    """Anderson acceleration with memory m, Tikhonov regularisation lam and mixing beta (1: undamped).

    max_iters is one cap for the batch or a (B,) tensor of per-sample caps, each at least 1 (more
    than `skip`). The authors' release needs two options: `skip` plain, undamped evaluations come
    first and can neither stop a sample nor be its solution; with `keep_lowest` the solution is the
    output of the evaluation with the lowest residual rather than of the last one, and with keep_input
    as well its input, the iterate itself.
    """
    batch, shape = len(z0), z0.shape[1:]
    caps = torch.as_tensor(max_iters, device=z0.device).expand(batch)
    first_cap, last_cap = (int(caps.min()), int(caps.max())) if batch else (0, 0)
    if first_cap < 1 + skip:
        raise ValueError(f"need a non-empty batch and max_iters of at least {1 + skip}, got {batch} samples and max_iters {max_iters}")
    solution = None  # allocated at the first partial write; where every sample stops at once, that evaluation's output itself
    iterations = torch.zeros(batch, dtype=torch.long, device=z0.device)
    residuals = torch.full((batch,), torch.inf, dtype=z0.dtype, device=z0.device)

    # Only the running samples are kept below: rows maps them to the batch, the histories of past
    # values f(x) and residuals f(x) - x shrink with them. The last iteration's values are never
    # mixed, so a cap of k needs at most k - 1 of them. A memory of one keeps none: its next iterate is
    # f(x) - (1 - beta) g, plain iteration for beta = 1: each full-size copy or product more an iteration
    # costs about as much as the release's whole loop outside f (benchmarks/authors.py's profile table).
    rows, x = torch.arange(batch, device=z0.device), z0.flatten(1)
    history = min(m, last_cap - 1) if m > 1 else 0
    past_f, past_g = z0.new_empty(batch, history, x.shape[1]), z0.new_empty(batch, history, x.shape[1])
    for k in range(last_cap):
        fx = f(x.reshape(-1, *shape), rows).flatten(1).to(z0.dtype)  # under autocast f and the mixing run in bf16
        g = fx - x
        r = _residual(g, fx, stop_mode)
        if keep_lowest and k >= skip:
            solution = z0.new_empty(batch, x.shape[1]) if solution is None else solution
            lower = (r < residuals[rows]) | (k == skip)
            solution[rows[lower]], residuals[rows[lower]] = (x if keep_input else fx)[lower], r[lower]
        # the caps are tested only once one is reached: each small tensor operation an iteration costs
        # 10-20 us of a frame on the CPU, against the release's one float comparison (benchmarks/authors.py)
        done = None if k < skip else ~(r >= tol)  # a NaN residual stops too
        if done is not None and k + 1 >= first_cap:
            done |= caps[rows] <= k + 1
        if done is not None and done.any():
            finished, every = rows[done], bool(done.all())
            iterations[finished] = k + 1
            if not keep_lowest and solution is None and len(finished) == batch:
                solution, residuals = fx, r  # no fresh 1.6 MB buffer a frame to fault in page by page (benchmarks/authors.py)
            elif not keep_lowest:
                solution = z0.new_empty(batch, x.shape[1]) if solution is None else solution
                solution[finished], residuals[finished] = (fx, r) if every else (fx[done], r[done])
            if every:
                break
            running = ~done
            rows, fx, g, past_f, past_g = rows[running], fx[running], g[running], past_f[running], past_g[running]
        if m > 1:
            past_f[:, k % m], past_g[:, k % m] = fx, g
        if k + 1 < skip or (m == 1 and beta == 1.0):
            x = fx
        elif m == 1:
            x = fx - (1 - beta) * g
        else:
            memory = min(k + 1, m)
            x = _anderson_mix(past_f[:, :memory], past_g[:, :memory], lam, beta).to(z0.dtype)
        del g  # not kept alive through the next evaluation of f: one full-size buffer less for the allocator to map anew
    return FixedPointResult(solution.view_as(z0), iterations, residuals)


def fixed_point_iteration(
    f: FixedPointFunction, z0: torch.Tensor, max_iters: int | torch.Tensor, tol: float, stop_mode: str = "rel"
) -> FixedPointResult:
    """Plain iteration z <- f(z): Anderson acceleration with a memory of one, undamped."""
    return anderson(f, z0, max_iters, tol, stop_mode, m=1, beta=1.0)


SOLVERS = {"anderson": anderson, "fpi": fixed_point_iteration}
RELEASED_ANDERSON_SKIP = 2  # the release's Anderson evaluates f twice before its first counted iteration


@torch.no_grad()
def released_solve(solver: str, solve: Callable[..., FixedPointResult], f: FixedPointFunction, z0: torch.Tensor, max_iters: int | torch.Tensor,
                   extra_step: bool = True, **options) -> FixedPointResult:
    """`solve` (a solver of SOLVERS with its options bound; `options`, such as tol, passed on) under the authors' release's conventions.

    A cap of k runs k iterations and then applies f once more: plain iteration returns f of its last
    iterate, f^(k+1)(z0) (k + 1 evaluations); Anderson first spends two plain evaluations, then up to
    k iterations, and returns f of its iterate with the lowest residual, which is that iterate's
    evaluation already made (counted, k + 3 evaluations, but not repeated). Without extra_step (the
    release's take_one_less_inference_step) plain iteration returns its last iterate and Anderson its
    lowest-residual iterate itself. Iterations count every evaluation. Every sample stops on its own,
    as in the release's one-frame-at-a-time evaluation.
    """
    if solver == "fpi":
        result = solve(f, z0, max_iters, **options)
        if not extra_step:
            return result
        return FixedPointResult(f(result.z, torch.arange(len(z0), device=z0.device)), result.iterations + 1, result.residual)
    caps = torch.as_tensor(max_iters, device=z0.device).expand(len(z0)) + RELEASED_ANDERSON_SKIP
    result = solve(f, z0, caps, skip=RELEASED_ANDERSON_SKIP, keep_lowest=True, keep_input=not extra_step, **options)
    return FixedPointResult(result.z, result.iterations + extra_step, result.residual)


def _residual(g: torch.Tensor, fz: torch.Tensor, stop_mode: str) -> torch.Tensor:
    if stop_mode not in STOP_MODES:
        raise ValueError(f"stop_mode must be one of {STOP_MODES}, got {stop_mode!r}")
    distance = g.flatten(1).norm(dim=1)
    return distance / (fz.flatten(1).norm(dim=1) + 1e-9) if stop_mode == "rel" else distance


def _anderson_mix(past_f: torch.Tensor, past_g: torch.Tensor, lam: float, beta: float) -> torch.Tensor:
    """Next iterate from past values f(x_i) and residuals g_i = f(x_i) - x_i, each (B, n, D).

    alpha minimises ||sum_i alpha_i g_i||^2 + lam ||alpha||^2 subject to sum_i alpha_i = 1, that is
    alpha = H^-1 1 / (1^T H^-1 1) with H the regularised Gram matrix of the g_i; the next iterate is
    sum_i alpha_i (beta f(x_i) + (1 - beta) x_i) = sum_i alpha_i (f(x_i) - (1 - beta) g_i), which
    for beta = 1 and one past value is f(x) exactly.
    """
    memory = past_f.shape[1]
    if memory == 1:
        return past_f[:, 0] - (1 - beta) * past_g[:, 0]
    gram = (past_g @ past_g.transpose(1, 2)).double() + lam * torch.eye(memory, dtype=torch.float64, device=past_g.device)
    weights = torch.linalg.solve(gram, gram.new_ones(len(gram), memory, 1))
    alpha = (weights / weights.sum(dim=1, keepdim=True)).transpose(1, 2).to(past_f.dtype)  # (B, 1, n)
    return (alpha @ past_f - (1 - beta) * (alpha @ past_g))[:, 0]
