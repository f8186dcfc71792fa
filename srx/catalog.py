"""What srx ships: each shipped model's architecture, scales, recorded quality and measured speed.

Quality comes from the evaluations each shipped checkpoint records (`scripts/ship_weights.py`
measures them on Set5 under the standard protocol: clean, JPEG 50 and the `camera` preset, see
`EVALUATIONS`); speed from
`srx/weights/speed.json`, written by `scripts/record_speed.py` from one `srx bench` run on the
machine it names (timings only compare within one run, so they are stored together).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srx.checkpoint import SHIPPED, _weights_dir, load_checkpoint, shipped_scales, shipped_weights

#: what every shipped checkpoint records under "eval": key -> (degradation preset, column title).
#: `camera` draws each image's JPEG quality and noise from the preset's ranges, seeded by the image
#: (`srx eval --degrade camera`), so it is the same LR every time.
EVALUATIONS: dict[str, tuple[str, str]] = {
    "set5": ("none", "clean"),
    "set5_jpeg50": ("jpeg50", "JPEG 50"),
    "set5_camera": ("camera", "camera preset"),
}

#: the frame `srx models` quotes cost for: 720p output at x3 (426x240 LR)
REFERENCE_LR_HW = (240, 426)
REFERENCE_SCALE = 3


def speed_file() -> Path:
    return _weights_dir() / "speed.json"


def read_speeds() -> dict[str, Any]:
    try:
        return json.loads(speed_file().read_text())
    except (OSError, ValueError):
        return {}


def shipped_catalog() -> list[dict[str, Any]]:
    """One dict per shipped model that has weights in this installation."""
    from srx.models import ModelConfig, inference_params, macs_per_hr_pixel

    speeds = read_speeds().get("models", {})
    rows = []
    for name, entry in SHIPPED.items():
        scales = shipped_scales(name)
        if not scales:
            continue
        quality: dict[str, dict[str, float | None]] = {}
        config = None
        recorded: dict[int, str] = {}  # each file's own record of the degradation its last run trained on
        for s in scales:
            payload = load_checkpoint(shipped_weights(s, name))
            config = ModelConfig.from_dict(dict(payload["model_config"]))
            quality[f"x{s}"] = _recorded_quality(payload.get("eval") or {})
            recorded[s] = (((payload.get("training") or {}).get("train_config")) or {}).get("degrade") or "clean"
        trained_on = trained_on_text(entry.trained_on, recorded)
        ref = ModelConfig.from_dict({**config.to_dict(), "scale": REFERENCE_SCALE})
        params = inference_params(config)
        h, w = REFERENCE_LR_HW
        gmac = macs_per_hr_pixel(ref) * h * w * REFERENCE_SCALE**2 / 1e9
        rows.append({
            "name": name,
            "architecture": config.name.rsplit("-x", 1)[0],
            "summary": entry.summary,
            "scales": scales,
            "quality": quality,
            "params": params,
            "gmac_720p_x3": gmac,
            "speed_720p_x3": speeds.get(name),
            "degrade": trained_on,
        })
    return rows


def _recorded_quality(ev: dict[str, Any]) -> dict[str, float | None]:
    """Model and bicubic PSNR for each of `EVALUATIONS`, as one shipped file records them (None if not)."""
    quality: dict[str, float | None] = {}
    for key in EVALUATIONS:
        recorded = ev.get(key) or {}
        quality[key] = recorded.get("model_psnr")
        quality[f"{key}_bicubic"] = recorded.get("bicubic_psnr")
    return quality


def trained_on_text(declared: str, recorded: dict[int, str]) -> str:
    """What a shipped model was trained on: the entry's own words where it has them, else its files'
    record: one degradation where every scale's says the same, else each scale's."""
    if declared:
        return declared
    if len(set(recorded.values())) == 1:
        return next(iter(recorded.values()))
    return "; ".join(f"x{s}: {d}" for s, d in sorted(recorded.items()))
