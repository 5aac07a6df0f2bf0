"""Robustness and calibration reports: CIFAR-10-C style corruptions and calibration of a classifier's confidence."""

from .calibration import brier_score, expected_calibration_error, fit_temperature
from .corruptions import CORRUPTIONS, FAMILIES, corrupt

__all__ = ["CORRUPTIONS", "FAMILIES", "brier_score", "corrupt", "expected_calibration_error", "fit_temperature"]
