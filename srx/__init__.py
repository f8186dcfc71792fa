"""srx: image super-resolution from training to the edge."""
from srx._version import __version__
from srx.errors import SrxError

__all__ = ["__version__", "SrxError"]
