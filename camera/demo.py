"""The built-in demo clip: a deterministic synthetic street scene srx renders itself, so
`srx stream --demo` runs on a fresh machine with no camera, no data and no download.

A wide panorama (sky gradient, buildings with lit windows, shop signs with text, a textured road
and trees) is drawn once with numpy and OpenCV at twice the output size; each frame pans across
it with a sub-pixel shift, adds moving objects (a car, a cyclist, a bouncing ball, a running clock)
and a little sensor noise seeded by the frame number, then is area-downscaled to the output size,
as a real camera's optics and sensor would. Frame i is the same on every machine and every run.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

DEMO_WIDTH, DEMO_HEIGHT, DEMO_FRAMES, DEMO_FPS = 320, 180, 100, 10.0


class DemoScene:
    """Frame `i` of the demo clip as BGR uint8 (height, width, 3); `len(scene)` frames at `fps`."""

    def __init__(
        self,
        width: int = DEMO_WIDTH,
        height: int = DEMO_HEIGHT,
        frames: int = DEMO_FRAMES,
        fps: float = DEMO_FPS,
        seed: int = 0,
    ) -> None:
        self.width, self.height, self.frames, self.fps, self.seed = int(width), int(height), int(frames), float(fps), seed
        self._pano = self._panorama()

    def __len__(self) -> int:
        return self.frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(i) for i in range(self.frames))

    # -- drawing -------------------------------------------------------------------------------
    def _panorama(self) -> np.ndarray:
        import cv2

        rng = np.random.default_rng(self.seed)
        H, W = 2 * self.height, 2 * self.width * 3  # rendered at 2x, three frames wide
        yy = np.linspace(0.0, 1.0, H)[:, None, None]
        sky = np.array([235, 190, 140], np.float64) * (1 - yy) + np.array([250, 235, 215], np.float64) * yy
        img = np.broadcast_to(sky, (H, W, 3)).copy()
        horizon = int(H * 0.72)
        x = 0
        while x < W:  # buildings with window grids
            bw = int(rng.integers(60, 150))
            top = int(rng.integers(int(H * 0.12), int(H * 0.5)))
            colour = rng.integers(60, 200, 3).astype(np.float64)
            img[top:horizon, x : x + bw] = colour
            img[top : top + 4, x : x + bw] = colour * 0.6  # roof ledge
            for wy in range(top + 10, horizon - 14, 18):
                for wx in range(x + 8, x + bw - 12, 16):
                    lit = rng.random() < 0.45
                    img[wy : wy + 10, wx : wx + 8] = (80, 200, 245) if lit else (70, 60, 50)
            x += bw + int(rng.integers(0, 12))
        img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)  # facade texture
        words = ["HOTEL", "CAFE 24", "PHARMACY", "BOOKS", "SRX x3", "BAKERY", "OPEN", "TAXI"]
        for i, word in enumerate(words):  # shop signs: thin strokes are what SR must recover
            sx = int((i + 0.3) * W / len(words))
            sy = int(horizon - 40 - rng.integers(0, 60))
            cv2.rectangle(img, (sx - 4, sy - 22), (sx + 16 * len(word), sy + 8), (30, 30, 30), -1)
            cv2.putText(img, word, (sx, sy), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        road = np.full((H - horizon, W, 3), 90, np.float64) + rng.normal(0, 12, (H - horizon, W, 1))
        img[horizon:] = np.clip(road, 0, 255).astype(np.uint8)
        for sx in range(0, W, 90):  # lane markings
            cv2.rectangle(img, (sx, H - 40), (sx + 50, H - 34), (235, 235, 235), -1)
        for tx in range(40, W, 230):  # trees
            cv2.line(img, (tx, horizon), (tx, horizon - 40), (40, 60, 90), 6)
            cv2.circle(img, (tx, horizon - 55), 26, (50, 140, 60), -1)
            cv2.circle(img, (tx - 12, horizon - 48), 16, (40, 120, 50), -1)
        return img

    def frame(self, i: int) -> np.ndarray:
        import cv2

        i = int(i) % max(self.frames, 1)
        H, W = 2 * self.height, 2 * self.width
        t = i / max(self.frames - 1, 1)
        offset = t * (self._pano.shape[1] - W)  # pan across the panorama, sub-pixel
        shift = np.float32([[1, 0, -offset], [0, 1, 0]])
        img = cv2.warpAffine(self._pano, shift, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        horizon = int(H * 0.72)
        car_x = int((1.4 * t % 1.0) * (W + 160)) - 80  # a car overtaking the pan
        cv2.rectangle(img, (car_x, horizon + 30), (car_x + 90, horizon + 58), (40, 40, 200), -1)
        cv2.rectangle(img, (car_x + 18, horizon + 14), (car_x + 66, horizon + 32), (60, 60, 220), -1)
        cv2.rectangle(img, (car_x + 24, horizon + 17), (car_x + 60, horizon + 29), (210, 200, 150), -1)
        for wx in (car_x + 18, car_x + 72):
            cv2.circle(img, (wx, horizon + 58), 9, (20, 20, 20), -1)
        bike_x = W - int((0.8 * t % 1.0) * (W + 60))  # a cyclist going the other way
        cv2.circle(img, (bike_x, horizon + 80), 10, (0, 0, 0), 2)
        cv2.circle(img, (bike_x + 30, horizon + 80), 10, (0, 0, 0), 2)
        cv2.line(img, (bike_x + 15, horizon + 55), (bike_x + 15, horizon + 75), (0, 120, 255), 4)
        ball_y = int(horizon - 10 - abs(np.sin(6 * np.pi * t)) * 120)  # a bouncing ball
        cv2.circle(img, (int(W * 0.3), ball_y), 12, (0, 220, 255), -1)
        stamp = f"CAM 01  {i // 600:02d}:{(i // 10) % 60:02d}.{i % 10}  frame {i:03d}"
        cv2.putText(img, stamp, (12, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        rng = np.random.default_rng(self.seed * 100003 + i)
        noisy = img.astype(np.int16) + rng.integers(-3, 4, img.shape, dtype=np.int16)
        img = np.clip(noisy, 0, 255).astype(np.uint8)
        return cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
