"""ipywidgets panels over the Python API: ``ResourcesPanel`` (``%runctl panel``) and
``TrainingPanel`` (``%runctl panel train INSTANCE_ID``). They hold no logic of their own."""

from __future__ import annotations

from ._actions import PanelActions
from ._base import panel_threads, registered
from .resources_panel import ResourcesPanel
from .training_panel import TrainingPanel

__all__ = ["PanelActions", "ResourcesPanel", "TrainingPanel", "panel_threads", "registered"]
