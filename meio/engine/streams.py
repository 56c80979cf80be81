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
* :func:`standard_normal` by inversion with Wichura's AS 241 (PPND16, relative accuracy about
  1e-16; *Applied Statistics* 37(3):477-484, 1988): one uniform per draw.
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

from meio.engine._numba import njit

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


@njit
def mix64(z):
    """SplitMix64's finaliser: a bijection of ``uint64`` with full avalanche."""
    z = (z ^ (z >> _SHIFT_30)) * _MIX1
    z = (z ^ (z >> _SHIFT_27)) * _MIX2
    return z ^ (z >> _SHIFT_31)


@njit
def stream_state(seed, key, replication):
    """Initial state of the stream of (``seed``, network ``key``, ``replication``), all ``uint64``."""
    return mix64(mix64(mix64(np.uint64(seed)) ^ np.uint64(key)) + np.uint64(replication))


@njit
def uniform(state):
    """Advance the stream; returns ``(state, u)`` with ``u`` uniform on (0, 1)."""
    state = np.uint64(state) + _GOLDEN
    bits = mix64(state) >> _SHIFT_11
    return state, (float(bits) + 0.5) * _TWO_TO_MINUS_53


@njit
def normal_quantile(p):
    """Standard normal quantile ``Phi^-1(p)`` for ``0 < p < 1`` (Wichura 1988, AS 241 PPND16)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
                          + 67265.770927008700853) * r + 45921.953931549871457) * r
                        + 13731.693765509461125) * r + 1971.5909503065514427) * r
                      + 133.14166789178437745) * r + 3.387132872796366608) / (
            ((((((r * 5226.495278852545925 + 28729.085735721942674) * r
                 + 39307.89580009271061) * r + 21213.794301586595867) * r
               + 5394.1960214247511077) * r + 687.1870074920579083) * r
             + 42.313330701600911252) * r + 1.0)
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        value = (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
                      + 0.24178072517745061177) * r + 1.27045825245236838258) * r
                    + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                  + 4.6303378461565452959) * r + 1.42343711074968357734) / (
            ((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
                 + 0.0151986665636164571966) * r + 0.14810397642748007459) * r
               + 0.68976733498510000455) * r + 1.6763848301838038494) * r
             + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        value = (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
                      + 0.0012426609473880784386) * r + 0.026532189526576123093) * r
                    + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                  + 5.4637849111641143699) * r + 6.6579046435011037772) / (
            ((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
                 + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r
               + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
             + 0.59983220655588793769) * r + 1.0)
    return -value if q < 0.0 else value


@njit
def standard_normal(state):
    """``(state, z)`` with ``z`` standard normal (inversion of one uniform)."""
    state, u = uniform(state)
    return state, normal_quantile(u)


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
