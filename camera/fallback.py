"""What a stream does while its model backend is away (a Triton server that died or restarts).

The runner says so by raising `RunnerUnavailable`. `InferenceGuard.run()` catches it, logs it once
per outage, and for the next frames returns None (the caller sends `fallback_frame()`: the frame
enlarged bicubic, labelled) until the retry time comes; retries back off exponentially up to a cap,
like a lost camera's reconnects. Outputs therefore keep running (recordings keep their pace, web
viewers keep seeing the camera), and the model's frames come back by themselves when it does.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

import numpy as np

from srx.eventlog import EventLog
from srx.runtime.base import RunnerUnavailable

log = logging.getLogger("srx")

T = TypeVar("T")
#: first wait before retrying a backend that became unavailable; doubles per failure up to the cap
FIRST_RETRY_WAIT = 0.5


class InferenceGuard:
    def __init__(self, scale: int, max_wait: float = 30.0) -> None:
        self.scale = int(scale)
        self.max_wait = max(float(max_wait), FIRST_RETRY_WAIT)
        self.down_since: float | None = None
        self.next_try = 0.0
        self.wait = FIRST_RETRY_WAIT
        self.outages = 0
        self.failed_attempts = 0
        self.fallback_frames = 0
        self.last_error = ""
        self.log = EventLog()  # backend-lost / backend-back, for --json-summary

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def run(self, call: Callable[[], T]) -> T | None:
        """call() unless the backend is down and its retry is not due; None when it is down."""
        now = time.monotonic()
        if self.down_since is not None and now < self.next_try:
            return None
        try:
            result = call()
        except RunnerUnavailable as exc:
            self.failed_attempts += 1
            self.last_error = str(exc)
            if self.down_since is None:
                self.down_since, self.wait = now, FIRST_RETRY_WAIT
                self.outages += 1
                self._event("backend-lost", error=str(exc))
                log.warning("%s; frames go out bicubic (labelled) while it is retried with backoff up to %.0f s",
                            exc, self.max_wait)
            else:
                log.warning("backend still unavailable (attempt %d); next try in %.1f s", self.failed_attempts, self.wait)
            self.next_try = time.monotonic() + self.wait
            self.wait = min(self.wait * 2, self.max_wait)
            return None
        if self.down_since is not None:
            log.warning("backend is back after %.1f s; %d frames went out bicubic meanwhile",
                        time.monotonic() - self.down_since, self.fallback_frames)
            self._event("backend-back", after_s=round(time.monotonic() - self.down_since, 3))
            self.down_since = None
        return result

    def fallback_frame(self, image: np.ndarray) -> np.ndarray:
        """The frame enlarged bicubic to the model's output size, labelled as such."""
        import cv2

        from srx.camera.outputs import _label

        self.fallback_frames += 1
        h, w = image.shape[:2]
        out = cv2.resize(image, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
        if out.ndim == 2:
            out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
        out = np.ascontiguousarray(out[..., :3])
        left = max(0.0, self.next_try - time.monotonic())
        fs = max(0.45, out.shape[0] / 900)
        _label(out, f"BICUBIC: model backend unavailable, retry in {left:.0f} s", (8, int(30 * fs) + 6), fs)
        return out

    def _event(self, kind: str, **info: Any) -> None:
        self.log.add(kind, **info)

    def summary(self) -> dict[str, Any]:
        return {"outages": self.outages, "failed_attempts": self.failed_attempts,
                "fallback_frames": self.fallback_frames, "last_error": self.last_error}
