"""`srx` commands of the camera stage (registered on the shared app)."""
from __future__ import annotations

from srx.cli.app import app  # noqa: F401
