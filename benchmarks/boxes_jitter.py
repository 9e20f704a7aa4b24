"""The figures of docs/boxes.md: box accuracy and jitter on the tiny synthetic world.

    python -m benchmarks.boxes_jitter [--out runs/boxes_bench] [--model runs/demo/ldeq/checkpoint.pth.tar]

Renders the tiny world (2 hard and 2 easy videos of 120-151 frames), detects, tracks, calibrates
and smooths boxes on its videos as the detection stage does, and bootstraps boxes from its true landmarks plus noise (a stand-in for a flickering
labeller). Prints, per video, the IoU with the true boxes and the jitter of each kind of box, then
the comparison of smoothers on the bootstrapped boxes. With --model, the boxes are also bootstrapped
with that LDEQ as the predictor, from the detected boxes, and its landmarks scored on each round's boxes.
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter1d

from wflwv.boxes import Calibration, bootstrap_boxes, box_jitter, detect_video, fit_box_map, landmark_boxes, smooth_boxes, track_main_face
from wflwv.boxes.calibration import centre_size, tight_boxes
from wflwv.boxes.track import iou
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.data.wflw import WflwStills
from wflwv.inference import VideoStream, predict_videos
from wflwv.metrics import nme, nmf
from wflwv.models import load_checkpoint
from wflwv.stills import predict_stills
from wflwv.filters import SavitzkyGolay
from wflwv.synth import generate

NOISE = 0.03  # per-landmark noise, a share of the face's side; half as much again as a per-frame shift of all of them


def noisy(truth: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = (truth.max(axis=1) - truth.min(axis=1)).max(axis=1)[:, None, None]
    return truth + side * (NOISE / 2 * rng.standard_normal((len(truth), 1, 2)) + NOISE * rng.standard_normal(truth.shape))


def median_iou(boxes: np.ndarray, truth: np.ndarray) -> float:
    return float(np.median([iou(box, true[None])[0] for box, true in zip(boxes, truth)]))


def box_error(boxes: np.ndarray, truth: np.ndarray) -> float:
    """RMS over frames of the centre and side errors, in percent of the true side, each video's mean error (its bias) removed."""
    centre, size = centre_size(boxes)
    true_centre, true_size = centre_size(truth)
    side = true_size.max(axis=1)
    error = np.column_stack([centre - true_centre, size.max(axis=1) - side]) / side[:, None]
    return float(100 * np.sqrt(np.mean(np.sum((error - error.mean(axis=0)) ** 2, axis=1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/boxes_bench"))
    parser.add_argument("--model", type=Path, help="an LDEQ checkpoint to bootstrap with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    out = args.out
    torch.set_num_threads(1)
    generate(out / "world", "tiny", seed=0, workers=2)
    truth = VideoSet(out / "world" / "videos")
    calibration = Calibration.load()
    rows, smoothers, detected = [], [], {}
    for video_id in truth.ids():
        true_boxes, landmarks, fps = truth.load_boxes(video_id), truth.load_landmarks(video_id), 30.0
        row = {"video": video_id, "frames": len(landmarks), "true box jitter": box_jitter(true_boxes)}
        track = track_main_face(detect_video(truth.video_path(video_id)), (256, 256))
        if track is not None:
            face, calibrated = track.face, calibration.detector(track.boxes)
            smoothed = smooth_boxes(calibrated, fps)
            detected[video_id] = smoothed
            row |= {
                "MTCNN frames": f"{int(track.detected.sum())}/{len(landmarks)}",
                "face frames": int(face.sum()),
                "IoU MTCNN": median_iou(track.boxes[face], true_boxes[face]),
                "IoU calibrated": median_iou(calibrated[face], true_boxes[face]),
                "IoU smoothed": median_iou(smoothed[face], true_boxes[face]),
                "jitter MTCNN": box_jitter(calibrated),
                "jitter smoothed": box_jitter(smoothed),
            }
        labels = landmark_boxes(noisy(landmarks, 0), calibration)
        bootstrapped = smooth_boxes(labels, fps)
        target = landmark_boxes(landmarks, calibration)
        row |= {"jitter noisy labels": box_jitter(labels), "jitter bootstrapped": box_jitter(bootstrapped), "IoU bootstrapped": median_iou(bootstrapped, target)}
        rows.append(row)
        for name, smoothed in [
            ("none", labels),
            *[(f"Gaussian sigma {s} frames", gaussian_filter1d(labels, s, axis=0, mode="nearest")) for s in (1, 2, 3, 4, 6)],
            *[(f"Savitzky-Golay order 2, window {w}", SavitzkyGolay(w, 2).apply(labels, fps)) for w in (7, 11, 15, 21, 31)],
        ]:
            smoothers.append({"smoother": name, "jitter": box_jitter(smoothed), "error": box_error(smoothed, target)})
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print()
    print(pd.DataFrame(smoothers).groupby("smoother", sort=False).mean().round(3).to_string())
    if args.model:
        print()
        model, _ = load_checkpoint(args.model)
        stills = WflwStills(out / "world" / "stills")
        faces = stills.faces("train") + stills.faces("test")
        own_map = fit_box_map(tight_boxes(predict_stills(model, stills, faces)), np.stack([face.box for face in faces]))
        print(f"landmark map fitted on the model's landmarks on {len(faces)} stills: {own_map}")
        for name, landmark_map in (("true landmarks", calibration.landmarks), ("the model's landmarks", own_map)):
            print(f"\nbootstrapping with the landmark map fitted on {name}")
            rounds = ldeq_rounds(model, truth, detected, args.rounds, calibration, replace(calibration, landmarks=landmark_map))
            print(rounds.round(3).to_string(index=False))


def ldeq_rounds(model: torch.nn.Module, truth: VideoSet, detected: dict[str, np.ndarray], rounds: int, truth_calibration: Calibration, calibration: Calibration) -> pd.DataFrame:
    """Per round, mean over videos: the jitter of the boxes, their IoU with the true boxes, and the
    NME and NMF of the landmarks predicted on them; round -1 is the true boxes, for reference."""

    def predict(video_path: Path, boxes: np.ndarray) -> np.ndarray:
        stream = VideoStream(video_path.stem, iter_frames(video_path), boxes)
        return next(predict_videos(model, [stream], slots=1, warm_start=False)).landmarks

    def scores(round_number: int, boxes: np.ndarray, landmarks: np.ndarray, gt: np.ndarray, true_boxes: np.ndarray) -> dict:
        return {"round": round_number, "box jitter": box_jitter(boxes), "IoU": median_iou(boxes, true_boxes),
                "NME": 100 * float(np.nanmean(nme(landmarks, gt))), "NMF": float(nmf(landmarks, gt))}

    rows = []
    for video_id, boxes in detected.items():
        gt, path = truth.load_landmarks(video_id), truth.video_path(video_id)
        true_boxes = landmark_boxes(gt, truth_calibration)
        rows.append(scores(-1, true_boxes, predict(path, true_boxes), gt, true_boxes))
        for round_number in range(rounds + 1):
            landmarks = predict(path, boxes)
            rows.append(scores(round_number, boxes, landmarks, gt, true_boxes))
            boxes = bootstrap_boxes(path, boxes, lambda *_: landmarks, rounds=1, calibration=calibration)
    return pd.DataFrame(rows).groupby("round", as_index=False).mean()


if __name__ == "__main__":
    main()
