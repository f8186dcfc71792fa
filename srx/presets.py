"""The model presets of `srx train --model`: data only (no torch), so the CLI can list them in
--help without loading a model library. srx.models builds them."""
from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "srcnn-915": {"arch": "srcnn", "kernel_sizes": [9, 1, 5], "widths": [64, 32]},
    "srcnn-955": {"arch": "srcnn", "kernel_sizes": [9, 5, 5], "widths": [64, 32]},
    # LR-grid nets, measured by Set5 dB per ms under ONNX Runtime (README, Shipped weights: `fast` and `camera`); `fast` and
    # `camera` are lrnet-32x4-pw3, below, grown from lrnet-32x4
    "lrnet-32x4": {"arch": "lrnet", "kernel_sizes": [5, 3, 3, 3], "widths": [32, 32, 32]},
    "lrnet-32x5": {"arch": "lrnet", "kernel_sizes": [5, 3, 3, 3, 3], "widths": [32, 32, 32, 32]},
    "lrnet-24x5": {"arch": "lrnet", "kernel_sizes": [3, 3, 3, 3, 3], "widths": [24, 24, 24, 24]},
    # lrnet-32x4 with a pointwise (1x1) 32->32 layer before the last, `fast` and `camera` before pw3: 7 % more time
    # (README, Shipped weights: `fast` and `camera`); a zero-initialised one is the identity, so it warm-starts from lrnet-32x4
    "lrnet-32x4-pw": {"arch": "lrnet", "kernel_sizes": [5, 3, 3, 1, 3], "widths": [32, 32, 32, 32]},
    # more pointwise layers (README, Shipped weights: `fast` and `camera`): one after the first layer too, or one before each 3x3 layer
    # (pw3, the shipped `fast` and `camera`: 6 % more time than pw), grown from pw weights the same way
    "lrnet-32x4-pw2": {"arch": "lrnet", "kernel_sizes": [5, 1, 3, 3, 1, 3], "widths": [32] * 5},
    "lrnet-32x4-pw3": {"arch": "lrnet", "kernel_sizes": [5, 1, 3, 1, 3, 1, 3], "widths": [32] * 6},
    "lrnet-32x4-plain": {"arch": "lrnet", "kernel_sizes": [5, 3, 3, 3], "widths": [32, 32, 32], "branches": False},
}

#: a word on a preset for `srx train --help`, where one helps a user choose
PRESET_NOTES: dict[str, str] = {
    "srcnn-915": "the reference",
    "lrnet-32x4-pw3": "the shipped `fast` and `camera`; grow it from lrnet-32x4-pw weights with scripts/add_pointwise.py --at 2 --at 1",
    "lrnet-32x4-plain": "no training-time branches",
}

#: other names of a preset: the architecture's name as `srx models`, export file names and the training
#: summary print it (`srcnn-9-1-5-x3` for srcnn-915 at x3), without the scale
PRESET_ALIASES: dict[str, str] = {
    "srcnn-9-1-5": "srcnn-915",
    "srcnn-9-5-5": "srcnn-955",
}


def preset_name(name: str | None) -> str | None:
    """The preset a `--model` value names: itself, or the preset it is another name of (None stays None)."""
    return PRESET_ALIASES.get(name, name) if name is not None else None
