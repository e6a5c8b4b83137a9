"""A stand-in for the ``torch`` package (tests only): enough for ``python -m torch.distributed.run``."""

__version__ = "0.0.0+runctl.fake"
