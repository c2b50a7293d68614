"""The application service: projects (workspace on disk), labels and rounds."""

from deepsad_core.rounds import DETECTORS, NETWORKS
from deepsad_core.studio.project import Project
from deepsad_core.studio.store import LABELS, ProjectStore

__all__ = ["DETECTORS", "LABELS", "NETWORKS", "Project", "ProjectStore"]
