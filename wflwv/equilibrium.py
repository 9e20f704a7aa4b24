"""Why RwR does or does not stabilise a given LDEQ: the shape of its fixed-point problem on video frames.

RwR can keep something of frame n-1 in two ways only: the problem of frame n has several fixed
points and the warm start picks the one near frame n-1's, or the solve stops before it has
forgotten where it started. Two measurements on pairs of consecutive frames (n-1, n) tell which:

- spread: the distance between frame n's fixed points solved to convergence from z0 = 0 and from
  z0 = z*_(n-1), as an NME (x100, inter-ocular). Near zero: one attracting fixed point per frame, so
  a converged warm start gives exactly the cold-start landmarks.
- shift: how far the fixed point moves from frame n-1 to frame n, as an NME (x100): the scale the
  spread is to be read against.
- re-solved: pairs where the model's solver (Anderson acceleration in the shipped LDEQs) did not
  meet the tolerance within CONVERGED_ITERS on a solve of frame n or n-1 and plain iteration, which
  replaced it there, did within PLAIN_ITERS. Anderson's extrapolation can wander on frames where
  plain iteration converges; a fixed point that attracts plain iteration is the one a warm start
  capped at an iteration or two moves towards.
- unconverged: pairs where a solve of frame n met the tolerance by neither: there the spread
  compares iterates, not fixed points (a frame without an attracting fixed point rather than one
  with two).
- contraction: ||f(z*_(n-1), x_n) - z*_n|| / ||z*_(n-1) - z*_n||, the share of the gap between the
  two frames' fixed points that one iteration from the previous one leaves. With one fixed point, a
  warm start capped at k iterations keeps roughly contraction^k of the previous frame.
"""

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, transform_points
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.metrics import normaliser
from wflwv.models.heatmaps import soft_argmax
from wflwv.models.ldeq import LDEQ, DEQLayer

CONVERGED_ITERS = 100  # a cap that the tolerance stops first on a trained model
PLAIN_ITERS = 1000  # plain iteration's cap, for the solves that the model's solver leaves unconverged


@dataclass(frozen=True)
class FixedPoints:
    landmarks: torch.Tensor  # (B, n_keypoints, 2) in crop units
    z_star: torch.Tensor  # (B, z_width, D, D)
    converged: torch.Tensor  # (B,) bool: met the tolerance, by the model's solver or by plain iteration
    re_solved: torch.Tensor  # (B,) bool: the model's solver did not, and plain iteration replaced it


@torch.no_grad()
def solve_to_convergence(model: LDEQ, images: torch.Tensor, z0: torch.Tensor | None = None) -> FixedPoints:
    """Each image's fixed point from z0 (None: zeros) by the model's solver in CONVERGED_ITERS iterations or,
    where that does not meet the tolerance, by plain iteration from the same start in PLAIN_ITERS."""
    solved = model(images, z0=z0, max_iters=CONVERGED_ITERS)
    stuck = solved.iterations >= CONVERGED_ITERS
    landmarks, z_star, converged = solved.landmarks.clone(), solved.z_star.clone(), ~stuck
    if stuck.any():
        plain = DEQLayer(model.deq_layer.cell, argparse.Namespace(**{**vars(model.args), "solver": "fpi"})).eval()
        start = torch.zeros_like(z_star[stuck]) if z0 is None else z0[stuck]
        again = plain(model.tail(images[stuck]), start, PLAIN_ITERS)
        z_star[stuck], converged[stuck] = again.z, again.iterations < PLAIN_ITERS
        landmarks[stuck] = soft_argmax(again.z[:, : model.args.n_keypoints])
    return FixedPoints(landmarks, z_star, converged, stuck)


@torch.no_grad()
def measure_pairs(model: LDEQ, previous: torch.Tensor, current: torch.Tensor, truth: np.ndarray) -> pd.DataFrame:
    """Spread and contraction of each pair: crops of frames n-1 and n (P, 3, S, S), frame n's truth (P, 98, 2) in crop pixels."""
    if not isinstance(model, LDEQ):
        raise WflwvError(None, f"equilibrium diagnostics need an LDEQ, got {type(model).__name__}")
    model.eval()
    before = solve_to_convergence(model, previous)
    z_previous = before.z_star
    cold = solve_to_convergence(model, current)
    warm = solve_to_convergence(model, current, z_previous)
    one_step = model.deq_layer.cell(z_previous, model.tail(current))
    gap = (z_previous - cold.z_star).flatten(1).norm(dim=1)
    left = (one_step - cold.z_star).flatten(1).norm(dim=1)
    scale = 100 * model.args.im_size / normaliser(truth)
    distance = lambda a, b: (a.landmarks - b.landmarks).norm(dim=-1).mean(dim=-1).numpy() * scale
    return pd.DataFrame({"spread": distance(warm, cold), "shift": distance(before, cold), "contraction": (left / gap.clamp_min(1e-12)).numpy(),
                         "converged": (cold.converged & warm.converged).numpy(), "re_solved": (before.re_solved | cold.re_solved | warm.re_solved).numpy()})


def frame_pairs(videos: VideoSet, video_id: str, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """`count` evenly spaced pairs of consecutive frames of a video, each cropped with its own box."""
    item = videos.load(video_id)
    later = np.unique(np.linspace(1, item.n_frames - 1, count).round().astype(int))
    wanted = set(later) | set(later - 1)
    frames = {n: frame for n, frame in enumerate(iter_frames(item.frames_path)) if n in wanted}
    affines = {n: box_to_affine(item.boxes[n], size) for n in wanted}
    crops = lambda indices: crops_to_tensor(np.stack([crop(frames[n], affines[n], size) for n in indices]))
    truth = np.stack([transform_points(item.landmarks[n], affines[n]) for n in later])
    return crops(later - 1), crops(later), truth


def diagnose(videos_root, model: LDEQ, pairs_per_video: int = 8) -> pd.DataFrame:
    """Per split (hard, easy, or all): the median contraction, the mean shift, the mean and largest spread, the re-solved and unconverged pairs."""
    videos = VideoSet(videos_root)
    splits = {name: videos.ids(name) for name in ("hard", "easy") if videos.has_split(name)} or {"all": videos.ids()}
    rows = []
    for split, ids in splits.items():
        measured = pd.concat([measure_pairs(model, *frame_pairs(videos, i, pairs_per_video, model.args.im_size)) for i in ids])
        rows.append({
            "split": split, "pairs": len(measured), "contraction": measured["contraction"].median(),
            "mean_shift": measured["shift"].mean(), "mean_spread": measured["spread"].mean(), "max_spread": measured["spread"].max(),
            "re_solved": int(measured["re_solved"].sum()), "unconverged": int((~measured["converged"]).sum()),
        })
    return pd.DataFrame(rows)
