"""Kabarin: a notification gateway for KiriminAja shipment pushes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kabarin")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
