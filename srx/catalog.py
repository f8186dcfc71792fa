"""What srx ships: each shipped model's architecture, scales, recorded quality and measured speed.

Quality comes from the evaluation each shipped checkpoint records (`scripts/ship_weights.py`
measures it on Set5 under the standard protocol, clean and JPEG 50); speed from
`srx/weights/speed.json`, written by `scripts/record_speed.py` from one `srx bench` run on the
machine it names (timings only compare within one run, so they are stored together).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srx.checkpoint import SHIPPED, _weights_dir, load_checkpoint, shipped_scales, shipped_weights

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
        for s in scales:
            payload = load_checkpoint(shipped_weights(s, name))
            config = ModelConfig.from_dict(dict(payload["model_config"]))
            ev = payload.get("eval") or {}
            quality[f"x{s}"] = {
                "set5": (ev.get("set5") or {}).get("model_psnr"),
                "set5_bicubic": (ev.get("set5") or {}).get("bicubic_psnr"),
                "set5_jpeg50": (ev.get("set5_jpeg50") or {}).get("model_psnr"),
                "set5_jpeg50_bicubic": (ev.get("set5_jpeg50") or {}).get("bicubic_psnr"),
            }
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
            "degrade": _trained_on(name, scales),
        })
    return rows


def _trained_on(name: str, scales: list[int]) -> str:
    payload = load_checkpoint(shipped_weights(scales[0], name))
    cfg = ((payload.get("training") or {}).get("train_config")) or {}
    return cfg.get("degrade") or "clean (standard protocol)"
