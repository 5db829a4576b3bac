"""CPAB: diffeomorphisms of [0, 1] from continuous piecewise-affine velocity fields.

``Tessellation`` holds the cells, constraints and basis; ``transform`` integrates the field
in closed form (exact to float64 round-off), with analytic derivatives.
"""

from actfx._src.cpab.integrate import grad_x, inverse, transform, velocity
from actfx._src.cpab.numeric import transform_numeric
from actfx._src.cpab.prior import (
    KERNELS,
    affine_covariance,
    precision_matrix,
    prior_covariance,
    sample_theta,
)
from actfx._src.cpab.tessellation import BASES, Tessellation, constraint_matrix

__all__ = [
    "BASES",
    "KERNELS",
    "Tessellation",
    "affine_covariance",
    "constraint_matrix",
    "grad_x",
    "inverse",
    "precision_matrix",
    "prior_covariance",
    "sample_theta",
    "transform",
    "transform_numeric",
    "velocity",
]
