"""The authors' one-frame-at-a-time evaluation loop, re-implemented from their conventions (never copied).

What it follows, as measured against their inference code (see docs/protocol.md): OpenCV decoding
(BGR frames); box corners rounded as int(v + 0.5), centre (x1 + w // 2, y1 + h // 2) with
w = x2 - x1 + 1, side max(x2 - x1, y2 - y1) * 1.2; a bilinear warp to im_size, COLOR_RGB2BGR on
the crop, ToTensor and ImageNet Normalize; the solver's cap k for k iterations, then f once more
(plain iteration: on its last iterate; Anderson: on its lowest-residual iterate, after two plain
evaluations), unless the checkpoint sets take_one_less_inference_step in cold start; under RwR the
cap `rwr_max_iters` on every frame, the first included, and the output of that extra evaluation
(`z_star_new`) carried to the next frame; the soft-argmax dividing each heatmap by 1e-4 + its sum.

It uses wflwv only for the network's two parts, the stem (`model.tail`) and the cell
(`model.deq_layer.cell`), so that a difference in landmarks is a difference in the evaluation.
`contractive_checkpoint` writes the released-format checkpoint that the benchmark and the tests
compare the two loops on.
"""

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from wflwv.models import LDEQ, load_checkpoint, load_config

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
Z_WEIGHT_SCALE = 0.003  # the cell's first convolution, on z: a random cell then contracts by about 0.1 an iteration
EXTRA_SCALE = 1.2
RELATIVE_EPS = 1e-5  # their relative residual divides by 1e-5 + ||f(z)||
HEATMAP_EPS = 1e-4


def contractive_checkpoint(path: Path, seed: int, **options) -> LDEQ:
    """ldeq_paper's geometry with `options` set, random weights from `seed` in the authors' format (args and state_dict), its
    cell made a contraction (the weights on z scaled by Z_WEIGHT_SCALE) so that rounding cannot decide its landmarks; loaded back."""
    args = argparse.Namespace(**{**load_config("ldeq_paper")["args"], **options})
    torch.manual_seed(seed)
    model = LDEQ(args)
    with torch.no_grad():
        model.deq_layer.cell.tail.conv.weight[:, : args.z_width] *= Z_WEIGHT_SCALE
    torch.save({"args": args, "state_dict": model.state_dict()}, path)
    return load_checkpoint(path)[0].eval()


def read_bgr_frames(path) -> list[np.ndarray]:
    """Every frame of a video as OpenCV decodes it (BGR), read whole first as their sequential loop does."""
    capture = cv2.VideoCapture(str(path))
    frames = [capture.read()[1] for _ in range(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))]
    capture.release()
    return frames


def crop_affine(box: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) frame -> crop affine: rounded corners, their centre and side, the square scaled to size x size, centre to centre."""
    x1, y1, x2, y2 = (int(v + 0.5) for v in box[:4])
    centre_x, centre_y = x1 + (x2 - x1 + 1) // 2, y1 + (y2 - y1 + 1) // 2
    scale = size / (max(x2 - x1, y2 - y1) * EXTRA_SCALE)
    return np.array([[scale, 0.0, size / 2 - scale * centre_x], [0.0, scale, size / 2 - scale * centre_y]])


def face_tensor(bgr_frame: np.ndarray, affine: np.ndarray, size: int) -> torch.Tensor:
    face = cv2.cvtColor(cv2.warpAffine(bgr_frame, affine, (size, size), flags=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR)
    return torch.from_numpy(((face / 255.0 - MEAN) / STD).transpose(2, 0, 1)).float()[None]


def relative_residual(fz: torch.Tensor, z: torch.Tensor) -> float:
    return float((fz - z).norm() / (RELATIVE_EPS + fz.norm()))


def plain_iteration(f: Callable, z0: torch.Tensor, cap: int, tol: float, extra_step: bool, **_) -> torch.Tensor:
    """cap iterations z <- f(z), stopping once the relative residual is below tol; then f once more on the last iterate."""
    z = z0
    for _ in range(cap):
        fz = f(z)
        converged = relative_residual(fz, z) < tol
        z = fz
        if converged:
            break
    return f(z) if extra_step else z


def anderson(f: Callable, z0: torch.Tensor, cap: int, tol: float, extra_step: bool, m: int, lam: float, beta: float) -> torch.Tensor:
    """Two plain evaluations, then up to cap mixing iterations over the last m pairs (the bordered least-squares
    weights), stopping below tol; the lowest-residual iterate, then f once more on it."""
    f0 = f(z0)
    xs, fs = [z0.flatten(), f0.flatten()], [f0.flatten(), f(f0).flatten()]
    best, lowest = None, float("inf")
    for _ in range(cap):
        x_past, f_past = torch.stack(xs[-m:]).double(), torch.stack(fs[-m:]).double()
        g = f_past - x_past
        n = len(g)
        system = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        system[0, 1:] = system[1:, 0] = 1
        system[1:, 1:] = g @ g.T + lam * torch.eye(n, dtype=torch.float64)
        alpha = torch.linalg.solve(system, torch.eye(n + 1, dtype=torch.float64)[:, 0])[1:]
        x = (beta * (alpha @ f_past) + (1 - beta) * (alpha @ x_past)).float()
        fx = f(x.view_as(z0)).flatten()
        xs.append(x), fs.append(fx)
        residual = relative_residual(fx, x)
        if residual < lowest:
            best, lowest = x, residual
        if residual < tol:
            break
    return f(best.view_as(z0)) if extra_step else best.view_as(z0)


SOLVERS = {"fpi": plain_iteration, "anderson": anderson}


def soft_argmax(heatmaps: torch.Tensor) -> np.ndarray:
    """(1, L, D, D) -> (L, 2): expected pixel index / D of each heatmap divided by 1e-4 + its sum."""
    weights = heatmaps / (HEATMAP_EPS + heatmaps.sum(dim=(2, 3), keepdim=True))
    grid = torch.arange(heatmaps.shape[-1], dtype=heatmaps.dtype) / heatmaps.shape[-1]
    return torch.stack((weights.sum(dim=2) @ grid, weights.sum(dim=3) @ grid), dim=-1)[0].numpy()


@torch.no_grad()
def video_landmarks(model, frames: list[np.ndarray], boxes: np.ndarray, rwr: bool, rwr_max_iters: int = 1) -> Iterator[np.ndarray]:
    """Each frame's landmarks (98, 2) in frame pixels, one frame at a time; frames are BGR as OpenCV decodes them."""
    args = model.args
    if args.stop_mode != "rel":
        raise ValueError(f"stop_mode {args.stop_mode!r}: this loop follows the release's relative stopping test only")
    cap = rwr_max_iters if rwr else args.max_iters
    extra_step = rwr or not getattr(args, "take_one_less_inference_step", False)  # their RwR script resets the flag to its own default, False
    solve = SOLVERS[args.solver]
    z_star = None
    for frame, box in zip(frames, boxes):
        affine = crop_affine(box, args.im_size)
        injection = model.tail(face_tensor(frame, affine, args.im_size))
        z0 = z_star if rwr and z_star is not None else torch.zeros(1, args.z_width, args.heatmap_size, args.heatmap_size)
        z_star = solve(lambda z: model.deq_layer.cell(z, injection), z0, cap, args.rel_diff_target, extra_step,
                       m=args.anderson_m, lam=args.anderson_lam, beta=args.anderson_beta)
        points = soft_argmax(z_star[:, : args.n_keypoints]) * args.im_size
        yield (points - affine[:, 2]) @ np.linalg.inv(affine[:, :2]).T
