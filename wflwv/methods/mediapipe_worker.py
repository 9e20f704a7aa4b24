"""MediaPipe's face mesh on face crops, run inside the mediapipe478 virtual environment (numpy 1, protobuf 4):
it imports nothing of wflwv. Reads .npy batches of crops on stdin, writes .npy batches of (k, 478, 2) points
(each message: its length in 8 bytes, little-endian, then the .npy; wflwv.methods.worker)."""

import io
import sys

import mediapipe as mp
import numpy as np


def main() -> None:
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3)
    while size := int.from_bytes(sys.stdin.buffer.read(8), "little"):
        crops = np.load(io.BytesIO(sys.stdin.buffer.read(size)))
        points = np.full((len(crops), 478, 2), np.nan)
        for index, image in enumerate(crops):
            found = mesh.process(np.ascontiguousarray(image)).multi_face_landmarks
            if found:
                points[index] = [(p.x, p.y) for p in found[0].landmark]
        buffer = io.BytesIO()
        np.save(buffer, points)
        sys.stdout.buffer.write(len(buffer.getvalue()).to_bytes(8, "little") + buffer.getvalue())
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
