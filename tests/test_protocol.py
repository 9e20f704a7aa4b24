"""The released protocol against an independent re-implementation of the authors' evaluation.

The re-implementation below is written from the conventions measured against the authors' inference
code (their crop, colour handling, normalisation, solver and soft-argmax); it uses wflwv only to load
the checkpoint and to read the network's two parts (the stem and the cell f).
"""

import cv2
import numpy as np
import pytest
import torch

from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.inference import VideoStream, predict_videos
from wflwv.models import load_checkpoint

from conftest import ldeq_checkpoint, write_wflwv

RWR_CAP = 1
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def authors_crop_affine(box: np.ndarray, size: int) -> np.ndarray:
    """Corners int(v + 0.5); w = x2 - x1 + 1, centre (x1 + w // 2, y1 + h // 2); side max(x2 - x1, y2 - y1) * 1.2,
    as three point correspondences: the centre to the crop's centre, the middle of the top and left sides to theirs."""
    x1, y1, x2, y2 = (int(v + 0.5) for v in box[:4])
    centre_x, centre_y = x1 + (x2 - x1 + 1) // 2, y1 + (y2 - y1 + 1) // 2
    half = max(x2 - x1, y2 - y1) * 1.2 / 2
    frame_points = np.float32([[centre_x, centre_y], [centre_x, centre_y - half], [centre_x - half, centre_y]])
    crop_points = np.float32([[size / 2, size / 2], [size / 2, 0], [0, size / 2]])
    return cv2.getAffineTransform(frame_points, crop_points)


def authors_input(bgr_frame: np.ndarray, affine: np.ndarray, size: int) -> torch.Tensor:
    """Bilinear warp of OpenCV's BGR frame, COLOR_RGB2BGR (which turns it into RGB), ToTensor, ImageNet Normalize."""
    face = cv2.cvtColor(cv2.warpAffine(bgr_frame, affine, (size, size), flags=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR)
    return torch.from_numpy(((face / 255.0 - MEAN) / STD).transpose(2, 0, 1)).float()[None]


def relative_residual(new: torch.Tensor, z: torch.Tensor) -> float:
    return float((new - z).norm() / (1e-5 + new.norm()))


def authors_fixed_point_iteration(f, z0: torch.Tensor, max_iters: int, tol: float, **_) -> torch.Tensor:
    """k iterations of z <- f(z), stopping early once the relative residual is below tol; f once more on the last iterate."""
    z = z0
    for _ in range(max_iters):
        new = f(z)
        converged = relative_residual(new, z) < tol
        z = new
        if converged:
            break
    return f(z)


def authors_anderson(f, z0: torch.Tensor, max_iters: int, tol: float, m: int, lam: float) -> torch.Tensor:
    """Two plain evaluations, then k Anderson iterations over the last m pairs (stopping early below tol); f once
    more on the mixed iterate with the lowest residual. The weights solve the bordered least-squares system."""
    f0 = f(z0)
    xs, fs = [z0.flatten(), f0.flatten()], [f0.flatten(), f(f0).flatten()]
    best, lowest = None, float("inf")
    for _ in range(max_iters):
        x_recent, f_recent = torch.stack(xs[-m:]).double(), torch.stack(fs[-m:]).double()
        g = f_recent - x_recent
        n = len(g)
        system = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        system[0, 1:] = system[1:, 0] = 1
        system[1:, 1:] = g @ g.T + lam * torch.eye(n, dtype=torch.float64)
        alpha = torch.linalg.solve(system, torch.eye(n + 1, dtype=torch.float64)[:, 0])[1:]
        x = (alpha @ f_recent).float()
        fx = f(x.view_as(z0)).flatten()
        xs.append(x), fs.append(fx)
        residual = relative_residual(fx, x)
        if residual < lowest:
            best, lowest = x, residual
        if residual < tol:
            break
    return f(best.view_as(z0))


AUTHORS_SOLVERS = {"fpi": authors_fixed_point_iteration, "anderson": authors_anderson}


def authors_soft_argmax(heatmaps: torch.Tensor) -> np.ndarray:
    """Expected pixel index / size of each heatmap divided by 1e-4 + its sum."""
    weights = heatmaps / (1e-4 + heatmaps.sum(dim=(2, 3), keepdim=True))
    grid = torch.arange(heatmaps.shape[-1], dtype=heatmaps.dtype) / heatmaps.shape[-1]
    return torch.stack((weights.sum(dim=2) @ grid, weights.sum(dim=3) @ grid), dim=-1)[0].numpy()


@torch.no_grad()
def authors_video(model, video_path, boxes: np.ndarray, rwr: bool) -> np.ndarray:
    """Landmarks (frames, 98, 2) in frame pixels, one frame at a time as the authors' sequential evaluation runs."""
    args = model.args
    capture = cv2.VideoCapture(str(video_path))
    frames = [capture.read()[1] for _ in range(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))]
    capture.release()
    landmarks, z_star = [], None
    for frame, box in zip(frames, boxes):
        affine = authors_crop_affine(box, args.im_size)
        injection = model.tail(authors_input(frame, affine, args.im_size))
        z0 = torch.zeros(1, args.z_width, args.heatmap_size, args.heatmap_size) if z_star is None or not rwr else z_star
        solve = AUTHORS_SOLVERS[args.solver]
        z_star = solve(lambda z: model.deq_layer.cell(z, injection), z0, RWR_CAP if rwr else args.max_iters, args.rel_diff_target, m=args.anderson_m, lam=args.anderson_lam)
        points = authors_soft_argmax(z_star[:, : args.n_keypoints]) * args.im_size
        landmarks.append((points - affine[:, 2]) @ np.linalg.inv(affine[:, :2].T))
    return np.stack(landmarks)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> VideoSet:
    return VideoSet(write_wflwv(tmp_path_factory.mktemp("released") / "WFLW_V"))


def released_model(folder, solver: str) -> torch.nn.Module:
    """A released-format checkpoint (args and state_dict only) of a contractive cell, loaded back."""
    model, _ = load_checkpoint(ldeq_checkpoint(folder / "final.pth.tar", seed=5, released=True, solver=solver, max_iters=6, anderson_m=3))
    return model.eval()


def wflwv_predictions(model, videos: VideoSet, protocol: str, rwr: bool) -> dict[str, np.ndarray]:
    items = {i: videos.load(i) for i in videos.ids()}
    streams = (VideoStream(i, iter_frames(item.frames_path), item.boxes) for i, item in items.items())
    run = predict_videos(model, streams, slots=3, warm_start=rwr, max_iters=RWR_CAP if rwr else None, protocol=protocol, channels_last=False)
    return {p.id: p.landmarks for p in run}


@pytest.mark.parametrize("solver", ["fpi", "anderson"])
@pytest.mark.parametrize("rwr", [False, True], ids=["cold start", "RwR"])
def test_the_released_protocol_gives_the_authors_landmarks(videos, tmp_path, solver, rwr):
    model = released_model(tmp_path, solver)
    authors = {i: authors_video(model, videos.load(i).frames_path, videos.load(i).boxes, rwr) for i in videos.ids()}
    released = wflwv_predictions(model, videos, "released", rwr)
    own = wflwv_predictions(model, videos, "wflwv", rwr)
    gap = np.concatenate([np.linalg.norm(released[i] - authors[i], axis=-1).ravel() for i in videos.ids()])
    own_gap = np.concatenate([np.linalg.norm(own[i] - authors[i], axis=-1).ravel() for i in videos.ids()])
    # 0.01 px rather than the 0.05 asked for: on this contractive cell, dropping the extra evaluation or giving the
    # first RwR frame the full cap moves the median by only 0.02-0.06 px (the warp's 1/32-pixel grid makes the rest)
    assert np.median(gap) < 0.01, np.median(gap)
    assert np.median(own_gap) > 0.1  # the conventions matter: wflwv's own protocol is measurably elsewhere
