"""Correctness tools for tinygrad 0.14.0: z3 index validation of whole schedules (`validate`), buffer-freeing checks
(`gc`), the AvgPool3D cases (`avgpool3d`), linearizer failure 53 (`failure53`) and kernel metadata (`metadata`)."""
from tinybounty.validate.report import TargetReport, ValidationReport
from tinybounty.validate.schedule import validate, validate_kernels
from tinybounty.validate.targets import TARGETS
from tinybounty.validate.z3index import IndexCheck, check_sink

__all__ = ["IndexCheck", "TARGETS", "TargetReport", "ValidationReport", "check_sink", "validate", "validate_kernels"]
