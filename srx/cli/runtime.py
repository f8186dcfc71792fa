"""`srx` commands of the runtime stage (registered on the shared app)."""
from __future__ import annotations

from srx.cli.app import app  # noqa: F401
