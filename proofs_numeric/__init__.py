"""Independent numerics: validated instances, hand-written mpmath references, the float64
fast path, and the algorithms and certificates built on them. Never imports theory/ or checks/."""

from .errors import InvalidInput, InvalidInstance, MLENotFound, PrecisionError, PrefcheckError
from .generate import FAMILIES, PRESETS, generate, preset, random_instances
from .instance import Instance

__all__ = [
    "FAMILIES", "PRESETS", "Instance", "InvalidInput", "InvalidInstance", "MLENotFound",
    "PrecisionError", "PrefcheckError", "generate", "preset", "random_instances",
]
