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
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

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
