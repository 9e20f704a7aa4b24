"""Why RwR does or does not stabilise a given LDEQ: the shape of its fixed-point problem on video frames.

RwR can keep something of frame n-1 in two ways only: the problem of frame n has several fixed
points and the warm start picks the one near frame n-1's, or the solve stops before it has
forgotten where it started. Two measurements on pairs of consecutive frames (n-1, n) tell which:

- spread: the distance between frame n's fixed points solved to convergence from z0 = 0 and from
  z0 = z*_(n-1), as an NME (x100, inter-ocular). Near zero: one attracting fixed point per frame, so
  a converged warm start gives exactly the cold-start landmarks.
- shift: how far the fixed point moves from frame n-1 to frame n, as an NME (x100): the scale the
  spread is to be read against.
- unconverged: pairs where the cold or the warm solve of frame n did not meet the tolerance within
  CONVERGED_ITERS: there the spread compares iterates, not fixed points (a frame without an
  attracting fixed point rather than one with two).
- contraction: ||f(z*_(n-1), x_n) - z*_n|| / ||z*_(n-1) - z*_n||, the share of the gap between the
  two frames' fixed points that one iteration from the previous one leaves. With one fixed point, a
  warm start capped at k iterations keeps roughly contraction^k of the previous frame.
"""

import numpy as np
import pandas as pd
import torch

from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, transform_points
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.metrics import normaliser
from wflwv.models.ldeq import LDEQ

CONVERGED_ITERS = 100  # a cap that the tolerance stops first on a trained model


@torch.no_grad()
def measure_pairs(model: LDEQ, previous: torch.Tensor, current: torch.Tensor, truth: np.ndarray) -> pd.DataFrame:
    """Spread and contraction of each pair: crops of frames n-1 and n (P, 3, S, S), frame n's truth (P, 98, 2) in crop pixels."""
    if not isinstance(model, LDEQ):
        raise WflwvError(None, f"equilibrium diagnostics need an LDEQ, got {type(model).__name__}")
    model.eval()
    before = model(previous, max_iters=CONVERGED_ITERS)
    z_previous = before.z_star
    cold = model(current, max_iters=CONVERGED_ITERS)
    warm = model(current, z0=z_previous, max_iters=CONVERGED_ITERS)
    one_step = model.deq_layer.cell(z_previous, model.tail(current))
    gap = (z_previous - cold.z_star).flatten(1).norm(dim=1)
    left = (one_step - cold.z_star).flatten(1).norm(dim=1)
    scale = 100 * model.args.im_size / normaliser(truth)
    distance = lambda a, b: (a.landmarks - b.landmarks).norm(dim=-1).mean(dim=-1).numpy() * scale
    converged = (cold.iterations < CONVERGED_ITERS) & (warm.iterations < CONVERGED_ITERS)
    return pd.DataFrame({"spread": distance(warm, cold), "shift": distance(before, cold), "contraction": (left / gap.clamp_min(1e-12)).numpy(),
                         "converged": converged.numpy()})


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
    """Per split (hard, easy, or all): the median contraction, the mean shift, the mean and largest spread, the unconverged pairs."""
    videos = VideoSet(videos_root)
    splits = {name: videos.ids(name) for name in ("hard", "easy") if videos.has_split(name)} or {"all": videos.ids()}
    rows = []
    for split, ids in splits.items():
        measured = pd.concat([measure_pairs(model, *frame_pairs(videos, i, pairs_per_video, model.args.im_size)) for i in ids])
        rows.append({
            "split": split, "pairs": len(measured), "contraction": measured["contraction"].median(),
            "mean_shift": measured["shift"].mean(), "mean_spread": measured["spread"].mean(), "max_spread": measured["spread"].max(),
            "unconverged": int((~measured["converged"]).sum()),
        })
    return pd.DataFrame(rows)
