"""Face boxes for every frame of a video: MTCNN detection, tracking, calibration, bootstrapped stabilisation."""

from wflwv.boxes.calibration import DEFAULT_CALIBRATION, BoxMap, Calibration, build_calibration, calibration_for, fit_box_map, fit_calibration, members_predictor
from wflwv.boxes.detect import Detections, detect_video, load_detector
from wflwv.boxes.stabilise import box_jitter, bootstrap_boxes, landmark_boxes, smooth_boxes
from wflwv.boxes.stage import BoxSettings, run_boxes
from wflwv.boxes.track import Track, TrackSettings, fill_gaps, track_main_face

__all__ = [
    "DEFAULT_CALIBRATION", "BoxMap", "BoxSettings", "Calibration", "Detections", "Track", "TrackSettings",
    "bootstrap_boxes", "box_jitter", "build_calibration", "calibration_for", "detect_video", "fill_gaps", "fit_box_map", "fit_calibration",
    "landmark_boxes", "load_detector", "members_predictor", "run_boxes", "smooth_boxes", "track_main_face",
]
