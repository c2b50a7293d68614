"""The application service: projects (workspace on disk), labels and rounds; what the pages use."""

from deepsad_core.detector import load_detector
from deepsad_core.rounds import DETECTORS, NETWORKS
from deepsad_core.studio.maps import start_map_process
from deepsad_core.studio.project import Project
from deepsad_core.studio.store import LABELS, ProjectStore
from deepsad_core.threshold import tradeoff_curve

__all__ = [
    "DETECTORS",
    "LABELS",
    "NETWORKS",
    "Project",
    "ProjectStore",
    "load_detector",
    "start_map_process",
    "tradeoff_curve",
]
