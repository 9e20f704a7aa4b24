"""MediaPipe's face mesh on face crops, run inside the mediapipe478 virtual environment (numpy 1, protobuf 4):
it imports nothing of wflwv. Reads .npy batches of crops on stdin, writes .npy batches of (k, 478, 2) points."""

import sys

import mediapipe as mp
import numpy as np


def main() -> None:
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
    while sys.stdin.buffer.peek(1):
        crops = np.lib.format.read_array(sys.stdin.buffer)
        points = np.full((len(crops), 478, 2), np.nan)
        for index, image in enumerate(crops):
            found = mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
            if found:
                points[index] = [(p.x, p.y) for p in found[0].landmark]
        np.save(sys.stdout.buffer, points)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
