"""The `srx` command line. Each module here registers the commands of one stage on the shared app;
commands only parse options and compose the stage functions (heavy imports stay inside them)."""
from srx.cli.app import app, main, parse_duration
from srx.cli import train as _train  # noqa: F401,E402
from srx.cli import export as _export  # noqa: F401,E402
from srx.cli import runtime as _runtime  # noqa: F401,E402
from srx.cli import camera as _camera  # noqa: F401,E402
from srx.cli import models as _models  # noqa: F401,E402
from srx.cli import serve as _serve  # noqa: F401,E402

__all__ = ["app", "main", "parse_duration"]
