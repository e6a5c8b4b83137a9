"""runctl-jupyter: run and watch ML training on AWS EC2 from Jupyter.

``%load_ext runctl_jupyter`` registers ``%runctl``. Importing this package imports neither boto3,
pandas nor ipywidgets: they load when a command first needs them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", "ResourcesPanel",
           "TrainingPanel", "api"]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import RunctlMagics

    ipython.register_magics(RunctlMagics)
    from .display import register_formatters

    register_formatters(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo beyond IPython's own bookkeeping."""


def __getattr__(name: str) -> Any:  # lazy public names (PEP 562)
    import importlib

    if name in ("ResourcesPanel", "TrainingPanel"):
        return getattr(importlib.import_module(f"{__name__}.widgets"), name)
    if name == "api":
        return importlib.import_module(f"{__name__}.api")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
