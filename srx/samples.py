"""Deterministic synthetic photos, so parity checks and demos run where no dataset is installed.

The images mix what an SR model reacts to: smooth gradients, sharp straight and curved edges,
fine periodic texture and sensor-like noise. Same (h, w, seed) → same pixels on every machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from srx.errors import SrxError


def sample_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured BGR uint8 (h, w, 3) image."""
    if h < 1 or w < 1:
        raise SrxError(f"sample image size must be positive, got {h}x{w}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    cy, cx, radius = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.15, 0.35) * min(h, w)
    disc = np.hypot(yy - cy, xx - cx) < radius
    angle = rng.uniform(0, np.pi)
    stripes = np.cos(angle) * xx + np.sin(angle) * yy
    for c in range(3):
        base = rng.uniform(60, 190) + rng.uniform(-40, 40) * (xx / max(w - 1, 1)) + rng.uniform(-40, 40) * (yy / max(h - 1, 1))
        texture = rng.uniform(10, 35) * np.sin(stripes * rng.uniform(0.25, 0.9) + rng.uniform(0, 2 * np.pi))
        img[..., c] = base + texture * (xx > w * rng.uniform(0.2, 0.5)) + rng.uniform(-70, 70) * disc
    img += rng.normal(0.0, 3.0, img.shape)
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def sample_images(count: int = 3, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """`count` named photos of assorted (not scale-aligned) sizes, around 100-200 px a side."""
    sizes = [(144, 176), (121, 203), (200, 150), (97, 131), (168, 168)]
    return [(f"sample{i}", sample_image(*sizes[i % len(sizes)], seed=seed + i)) for i in range(count)]


# Natural photos that install with srx's own dependencies (files inside the scikit-image and
# matplotlib packages, read from disk: nothing downloads). No srx model trained on them or was
# chosen by them, so they are a held-out set on every machine, beside Set5 where it exists.
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "moon.png", "motorcycle_left.png", "page.png", "rocket.jpg",
                  "text.png")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)


def library_photos() -> list[Path]:
    """Paths of the photos above that this installation has (scikit-image 0.26 and matplotlib 3.11
    have all 14), in name order."""
    import matplotlib
    import skimage

    places = [(Path(skimage.__file__).parent / "data", SKIMAGE_PHOTOS),
              (Path(matplotlib.get_data_path()) / "sample_data", MATPLOTLIB_PHOTOS)]
    found = [folder / name for folder, names in places for name in names if (folder / name).is_file()]
    if not found:
        raise SrxError("found none of the photos that ship inside scikit-image and matplotlib "
                       f"(looked in {places[0][0]} and {places[1][0]})")
    return sorted(found, key=lambda p: p.name)


def write_library_photos(out: Path) -> list[Path]:
    """Copy `library_photos()` into the folder `out` (created), for `srx eval --data out`; returns the copies."""
    import shutil

    from srx.fsutil import ensure_dir

    sources = library_photos()
    out = ensure_dir(Path(out))
    return [Path(shutil.copyfile(path, out / path.name)) for path in sources]
