"""``sovren-db doctor`` and the exporter's collections: every store against Sovren's thresholds."""

from .model import UNEXAMINED, Examination, Sample
from .run import COLLECTIONS, collect, examine_all, exit_code
from .thresholds import Thresholds, load_thresholds

__all__ = ["COLLECTIONS", "UNEXAMINED", "Examination", "Sample", "Thresholds", "collect", "examine_all",
           "exit_code", "load_thresholds"]
