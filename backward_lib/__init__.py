"""backward_lib: forward, backward and other composition orders of training step maps.

Reproduces Dherin et al., "How iteration composition influences convergence and stability in
deep learning" (TMLR 2025). The core is :func:`iterate`: one engine, any order, any step map.
"""

from . import orders
from .engine import StepMap, count_applications, iterate, step_map, trajectory

__version__ = "0.1.0"

__all__ = [
    "StepMap",
    "__version__",
    "count_applications",
    "iterate",
    "orders",
    "step_map",
    "trajectory",
]
