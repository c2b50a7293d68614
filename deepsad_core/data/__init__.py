"""Data in: files, uploads and arrays become a ``Dataset``; bad input raises ``DataError``."""

from deepsad_core.data.dataset import Dataset, LoadLimits, LoadReport
from deepsad_core.data.loader import SUPPORTED_SUFFIXES, load_dataset, read_any_table
from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor, preprocessor_from_dict
from deepsad_core.exceptions import DataError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DataError",
    "Dataset",
    "ImagePreprocessor",
    "LoadLimits",
    "LoadReport",
    "TabularPreprocessor",
    "load_dataset",
    "preprocessor_from_dict",
    "read_any_table",
]
