"""Standard normal functions usable inside kernels (no SciPy in ``nopython`` mode)."""

from __future__ import annotations

import math

from meio.engine._numba import njit

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit
def normal_pdf(z):
    """Standard normal density."""
    return _INV_SQRT_2PI * math.exp(-0.5 * z * z)


@njit
def normal_cdf(z):
    """Standard normal distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@njit
def normal_loss(z):
    """Standard normal loss ``L(z) = E[(Z - z)^+] = phi(z) - z (1 - Phi(z))``."""
    return normal_pdf(z) - z * 0.5 * math.erfc(z / math.sqrt(2.0))


@njit
def inverse_normal_loss(target):
    """The ``z`` with ``L(z) = target`` (``L`` falls strictly from +inf to 0), by bisection.

    Solved to 1e-12 in ``z`` on ``[-40, 40]``. Beyond that range the answer is exact in double
    precision without a search: ``L(z) = -z`` for ``z <= -40`` (``phi`` and ``Phi`` vanish), and
    targets at or below ``L(40)`` give 40.
    """
    low, high = -40.0, 40.0
    if target >= normal_loss(low):
        return -target
    if target <= normal_loss(high):
        return high
    for _ in range(400):
        middle = 0.5 * (low + high)
        if normal_loss(middle) > target:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)
