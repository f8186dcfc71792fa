"""JSON as srx writes it for scripts (`--json`, `--json-summary`, /stats, tune.json): strict JSON,
where a value that is not a finite number (a PSNR of two identical pictures is infinite) is null.
Python's json module wrote `Infinity`, which is not JSON: strict parsers (JavaScript's JSON.parse,
Go, serde) refuse the whole document."""
from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every float that is not finite (inf, -inf, nan) made None, in dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """`value` as strict JSON text (non-finite numbers as null)."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)
