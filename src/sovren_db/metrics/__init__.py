"""``sovren-db metrics``: the declared schema's health and H.4's measures for Prometheus."""

from .catalog import METRICS, PREFIX
from .exporter import Exporter, Scheduler, render

__all__ = ["METRICS", "PREFIX", "Exporter", "Scheduler", "render"]
