"""Counter-based random streams and the samplers the simulator draws from, usable inside kernels.

Streams
-------
Every (network, replication) pair owns one stream: a SplitMix64 generator (Steele, Lea & Flood
2014, *OOPSLA*: "Fast splittable pseudorandom number generators") whose 64-bit state starts at
``mix(mix(mix(seed) ^ key) + replication)``, where ``key`` is a stable hash of the network's id
string (:func:`network_key`, never its position in a batch) and ``mix`` is SplitMix64's
finaliser. A draw adds the golden-ratio increment to the state and returns the finalised state,
so a stream is a pure function of (seed, network id, replication): results do not depend on the
thread count, on how the catalog is partitioned or on the order of networks. The state is a
plain ``uint64`` threaded through the samplers (``state, value = sampler(state, ...)``); there is
no global random state. The arithmetic relies on ``uint64`` wrap-around (callers running the
kernels as plain Python wrap them in ``np.errstate(over="ignore")``).

Samplers
--------
* :func:`uniform` on the open interval (0, 1): the top 53 bits, centred.
* :func:`standard_normal`: the ziggurat method of Marsaglia & Tsang (2000, *Journal of
  Statistical Software* 5(8)) in Doornik's variant (2005, "An improved ziggurat method to
  generate normal random samples"): layer and uniform from independent bits of one draw.
* :func:`poisson`: inversion by sequential search below mean 10, else the transformed
  rejection PTRS of Hörmann (1993, *Insurance: Mathematics and Economics* 12:39-45), the
  algorithm NumPy also uses.
* :func:`gamma`: Marsaglia & Tsang (2000, *ACM TOMS* 26(3):363-372), with the
  ``U^(1/shape)`` boost for shapes below one.
* :func:`negative_binomial` with a given mean and variance: the gamma-Poisson mixture (Poisson
  with a Gamma(``r``, ``mean / r``) rate, ``r = mean^2 / (variance - mean)``); a variance at or
  below the mean gives a Poisson draw.

Normal demand with a stated mean and standard deviation
--------------------------------------------------------
Demand is never negative, so "normal demand with mean ``mu`` and standard deviation ``sigma``"
is drawn as ``X = max(0, m + s Z)``, a normal censored at zero, whose location ``m`` and scale
``s`` :func:`censored_normal_parameters` solves (once per stage, outside the kernels) so that
``E[X] = mu`` and ``SD[X] = sigma`` exactly. With ``a = m / s``, ``Phi`` and ``phi`` the standard
normal distribution and density, the partial moments of the normal give (``g(a) = E[(a + Z)^+]``
is the standard normal loss function at ``-a``)::

    E[X] / s   = g(a) = a Phi(a) + phi(a)
    Var[X] / s^2 = v(a) = a^2 Phi(a) Phi(-a) + Phi(a) + a phi(a) (1 - 2 Phi(a)) - phi(a)^2

The coefficient of variation ``sqrt(v(a)) / g(a)`` falls strictly from infinity (``a -> -inf``)
to 0 (``a -> inf``; it is about ``1 / a`` for large ``a``), so every ``sigma / mu`` has exactly
one ``a``; then ``s = mu / g(a)`` and ``m = a s``. Up to a coefficient of variation of 0.2
the censoring is invisible (``m`` and ``s`` are ``mu`` and ``sigma`` to 3e-7); at 0.3 ``s`` is
``sigma`` to 4e-4, at 0.5 ``m = 0.995 mu``, ``s = 1.023 sigma`` and demand is 0 in 2.6% of
periods, at 1.46 (``m = 0``) in half of them, which is intermittent demand rather than a normal
one (choose the ``negative_binomial`` or ``history`` demand model for such items).
The solve is restricted to ``a >= -8`` (:data:`LOWEST_STANDARD_LOCATION`: demand positive in at
least one period in about ``10^15``, a coefficient of variation up to 5.6e7, beyond
what a sampler of 53-bit uniforms can draw faithfully); where ``sigma / mu`` is larger, or
``mu = 0 < sigma`` (no demand that is never negative has mean 0 and a spread), there is no
solution and the result is NaN.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy.special import ndtr

from meio.engine._numba import njit, njit_inline

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT_30 = np.uint64(30)
_SHIFT_27 = np.uint64(27)
_SHIFT_31 = np.uint64(31)
_SHIFT_11 = np.uint64(11)
_TWO_TO_MINUS_53 = 2.0**-53
_POISSON_INVERSION_LIMIT = 10.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: Lowest standardised location ``m / s`` :func:`censored_normal_parameters` solves for.
LOWEST_STANDARD_LOCATION = -8.0
_NEWTON_STEPS = 60


def network_key(network_id: str) -> np.uint64:
    """Stable 64-bit key of a network id: the first 8 bytes of its BLAKE2b digest (little endian)."""
    digest = hashlib.blake2b(str(network_id).encode("utf-8"), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


@njit_inline
def mix64(z):
    """SplitMix64's finaliser: a bijection of ``uint64`` with full avalanche."""
    z = (z ^ (z >> _SHIFT_30)) * _MIX1
    z = (z ^ (z >> _SHIFT_27)) * _MIX2
    return z ^ (z >> _SHIFT_31)


@njit
def stream_state(seed, key, replication):
    """Initial state of the stream of (``seed``, network ``key``, ``replication``), all ``uint64``."""
    return mix64(mix64(mix64(np.uint64(seed)) ^ np.uint64(key)) + np.uint64(replication))


@njit_inline
def uniform(state):
    """Advance the stream; returns ``(state, u)`` with ``u`` uniform on (0, 1)."""
    state = np.uint64(state) + _GOLDEN
    bits = mix64(state) >> _SHIFT_11
    return state, (float(bits) + 0.5) * _TWO_TO_MINUS_53


def _ziggurat_tables(layers: int = 128, tail: float = 3.442619855899, area: float = 9.91256303526217e-3):
    """Layer edges ``x`` and inner/outer ratios of Doornik's ziggurat for the normal density."""
    edges = np.zeros(layers + 1)
    f = math.exp(-0.5 * tail * tail)
    edges[0] = area / f
    edges[1] = tail
    for i in range(2, layers):
        edges[i] = math.sqrt(-2.0 * math.log(area / edges[i - 1] + f))
        f = math.exp(-0.5 * edges[i] * edges[i])
    return edges, edges[1:] / edges[:-1]


_ZIGGURAT_TAIL = 3.442619855899
_ZIGGURAT_X, _ZIGGURAT_RATIO = _ziggurat_tables()
_LAYER_MASK = np.uint64(127)


@njit
def _normal_slow(state, u, layer):
    """The ziggurat's rare branches: the tail beyond the base layer, or a wedge test."""
    if layer == 0:
        while True:
            state, a = uniform(state)
            state, b = uniform(state)
            x = math.log(a) / _ZIGGURAT_TAIL
            if -2.0 * math.log(b) >= x * x:
                return state, (x - _ZIGGURAT_TAIL) if u < 0.0 else (_ZIGGURAT_TAIL - x)
    x = u * _ZIGGURAT_X[layer]
    outer = math.exp(-0.5 * (_ZIGGURAT_X[layer] ** 2 - x * x))
    inner = math.exp(-0.5 * (_ZIGGURAT_X[layer + 1] ** 2 - x * x))
    state, v = uniform(state)
    if inner + v * (outer - inner) < 1.0:
        return state, x
    return state, np.nan


@njit_inline
def standard_normal(state):
    """``(state, z)`` with ``z`` standard normal: Doornik's (2005) 128-layer ziggurat.

    One 64-bit draw gives the layer (low 7 bits) and a uniform on (-1, 1) (top 53 bits); about
    99% of draws end at the first comparison.
    """
    while True:
        state = np.uint64(state) + _GOLDEN
        bits = mix64(state)
        layer = int(bits & _LAYER_MASK)
        u = 2.0 * ((float(bits >> _SHIFT_11) + 0.5) * _TWO_TO_MINUS_53) - 1.0
        if abs(u) < _ZIGGURAT_RATIO[layer]:
            return state, u * _ZIGGURAT_X[layer]
        state, z = _normal_slow(state, u, layer)
        if not np.isnan(z):
            return state, z


@njit
def poisson(state, mean):
    """``(state, k)`` with ``k`` Poisson with ``mean`` (a float holding a whole number)."""
    if mean <= 0.0:
        return state, 0.0
    if mean < _POISSON_INVERSION_LIMIT:
        state, u = uniform(state)
        probability = math.exp(-mean)
        cumulative = probability
        k = 0.0
        while u > cumulative and probability > 0.0:
            k += 1.0
            probability *= mean / k
            cumulative += probability
        return state, k
    root = math.sqrt(mean)
    log_mean = math.log(mean)
    b = 0.931 + 2.53 * root
    a = -0.059 + 0.02483 * b
    log_inverse_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    acceptance = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        state, u = uniform(state)
        state, v = uniform(state)
        u -= 0.5
        us = 0.5 - abs(u)
        k = float(math.floor((2.0 * a / us + b) * u + mean + 0.43))
        if us >= 0.07 and v <= acceptance:
            return state, k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + log_inverse_alpha - math.log(a / (us * us) + b)
                <= -mean + k * log_mean - math.lgamma(k + 1.0)):
            return state, k


@njit
def gamma(state, shape):
    """``(state, x)`` with ``x`` Gamma(``shape``, scale 1), ``shape > 0`` (Marsaglia & Tsang)."""
    boost = 1.0
    if shape < 1.0:
        state, u = uniform(state)
        boost = u ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        state, z = standard_normal(state)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = uniform(state)
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return state, boost * d * v


@njit
def negative_binomial(state, mean, variance):
    """``(state, k)``: negative binomial with ``mean`` and ``variance`` (Poisson if not overdispersed)."""
    if variance <= mean or mean <= 0.0:
        return poisson(state, mean)
    size = mean * mean / (variance - mean)
    state, rate = gamma(state, size)
    return poisson(state, rate * mean / size)


def _censored_moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(g, v, Phi)`` at standardised locations ``a``: the mean and variance of ``max(0, a + Z)``."""
    below, above = ndtr(a), ndtr(-a)
    density = _INV_SQRT_2PI * np.exp(-0.5 * a * a)
    mean = a * below + density
    variance = a * a * below * above + below + a * density * (above - below) - density * density
    return mean, variance, below


def censored_normal_parameters(mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale of the normal censored at zero with the given mean and standard deviation.

    Solves ``log sqrt(v(a)) - log g(a) = log(sd / mean)`` for the standardised location ``a``
    (see the module docstring) by Newton's method, whose derivative is ``g Phi(-a) / v - Phi(a) /
    g`` (``g' = Phi``, ``v' = 2 g Phi(-a)``), started at ``a = mean / sd`` (right of the root:
    the coefficient of variation at ``a > 0`` is below ``1 / a``). The left side is convex and
    decreasing in ``a``, so the first step lands left of the root (kept at or above
    :data:`LOWEST_STANDARD_LOCATION`) and the iterates then rise monotonically to it: 3-4 steps
    at the coefficients of variation ``meio generate`` draws, about a dozen anywhere between
    1e-4 and 1e6. Vectorised over stages.

    Parameters
    ----------
    mean, sd : numpy.ndarray
        Stated mean and standard deviation per stage (``>= 0``).

    Returns
    -------
    location, scale : numpy.ndarray
        ``m`` and ``s`` with ``E[max(0, m + s Z)] = mean`` and ``SD = sd`` (relative error below
        1e-11); ``(mean, 0)`` where ``sd = 0``; NaN where no such normal exists (``mean = 0 < sd``,
        or ``sd / mean`` beyond the coefficient of variation at ``a = -8``).

    """
    mean = np.asarray(mean, np.float64)
    sd = np.asarray(sd, np.float64)
    location = mean.copy()
    scale = np.zeros_like(mean)
    with np.errstate(divide="ignore", invalid="ignore"):  # sd = 0 or mean = 0: not solved below
        target = np.log(sd) - np.log(mean)  # log of the coefficient of variation
    lowest = np.full(mean.shape, LOWEST_STANDARD_LOCATION)
    g, v, _ = _censored_moments(lowest)
    solve = (sd > 0.0) & (0.5 * np.log(v) - np.log(g) >= target)
    target = target[solve]
    a = np.exp(-target)  # right of the root: the coefficient of variation at a > 0 is below 1 / a
    # Each stage stops at its own convergence, so its result never depends on the other stages
    # of the batch (the same numbers whatever the partitioning).
    active = np.arange(a.size)
    for _ in range(_NEWTON_STEPS):
        point = a[active]
        g, v, below = _censored_moments(point)
        step = (0.5 * np.log(v) - np.log(g) - target[active]) / (below / g - g * (1.0 - below) / v)
        point = point + np.maximum(step, LOWEST_STANDARD_LOCATION - point)
        a[active] = point
        active = active[np.abs(step) > 1e-12 * np.maximum(np.abs(point), 1.0)]
        if active.size == 0:
            break
    g, _, _ = _censored_moments(a)
    scale[solve] = mean[solve] / g
    location[solve] = a * scale[solve]
    unsolvable = (sd > 0.0) & ~solve
    location[unsolvable] = np.nan
    scale[unsolvable] = np.nan
    return location, scale
