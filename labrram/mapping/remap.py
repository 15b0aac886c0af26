"""Fault-aware input order: which array row carries which input of a layer.

A programming job leaves a few devices outside their windows: stuck SET or RESET from
fabrication, or out of iterations. Where such a device sits, its differential pair no longer
holds the weight it was given. The inputs of a layer can be routed to its array rows in any
order (the row drivers take the input vector in the order the rows need), so the damage
depends on which input each row carries:

* a device that is stuck low is harmless under a weight whose sign leaves it at ``g_min``
  (its partner carries the weight), and a device stuck anywhere costs nothing where its
  target happens to lie within the verify window of where it is stuck;
* anywhere else its pair is lost, and the read-back drops the weight (reads it as 0): the
  error is that weight, so the least harm is a row whose weight in that column is small.

:func:`fault_aware_order` solves the assignment of inputs to rows that loses the least total
weight magnitude (``scipy.optimize.linear_sum_assignment``), preferring the order already
programmed when a move gains nothing, so that only the rows that move need programming again.
This follows the fault-tolerant remapping of stuck-at faults in crossbars by row permutation
(e.g. Liu et al., "Rescuing memristor-based neuromorphic design with high defects", DAC 2017),
with the faults found by the write-verify itself rather than by a separate test.

A row permutation does not remove a stuck device's current from an analog MVM, where its row is
driven: it helps the weights read back (which drop the lost pairs), and an MVM only where the
stuck conductance matches its new target.

Every device off target is taken to stay where the job left it, which is what a stuck device
does. A device that only ran out of iterations is more hopeful than that: if its row moves, the
next job programs it afresh anyway; if not, it is left as it is.

With several copies of a layer (several pairs per weight, read back as the mean of the healthy
ones) a lost pair costs nothing where another copy holds the weight: ``spared`` tells
:func:`fault_aware_order` which weights those are, and the copies are ordered in turn, each
given the others (:func:`lost_pairs` says which pairs an order loses).

A binary network sampled from one device per ±1 weight (Bayes2IMC: the device's read noise
against a reference draws the sign) has its own cost: :func:`binary_fault_order`.

numpy and scipy only: this room never imports torch, the simulator, the drivers or
``labrram.nn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .differential import MappedLayer, input_order

__all__ = ["STAND_INS", "binary_fault_order", "binary_off_target", "fault_aware_order", "least_cost_order", "lost_pairs"]

#: cost of moving one row, in units of the layer's largest weight: a move is made only when
#: it saves more weight than this (so a fault-free layer keeps its order)
_MOVE_COST = 1e-9


def _devices(layer: MappedLayer, name: str, values: Any) -> np.ndarray:
    """``values`` in the slice-stacked shape ``(n_slices, n_in, n_out)`` of the layer's devices."""
    a = np.asarray(values)
    if a.shape != layer.g_plus.shape:
        raise ValueError(f"{name} has shape {a.shape}, the layer's devices are {layer.g_plus.shape}")
    return layer._stack(a)


def _pair(name: str, values: Any) -> tuple[Any, Any]:
    if not isinstance(values, (tuple, list)) or len(values) != 2:
        raise ValueError(f"{name} must be a pair (G+ devices, G- devices), got {type(values).__name__}")
    return values[0], values[1]


def _failing(layer: MappedLayer, achieved: Any, converged: Any, half_width: float):
    """Per slot ``p`` with a device off target, whether the pair of column ``j`` would be lost
    if it carried input ``i``: ``(slots, lost[slot, i, j])``."""
    if isinstance(half_width, (bool, np.bool_)) or not isinstance(half_width, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(half_width) and half_width > 0):  # fmt: skip
        raise ValueError(f"half_width must be a positive conductance, S; got {half_width!r}")
    a = [_devices(layer, f"achieved ({s})", x).astype(float) for s, x in zip(("plus", "minus"), _pair("achieved", achieved))]
    ok = [_devices(layer, f"converged ({s})", x).astype(bool) for s, x in zip(("plus", "minus"), _pair("converged", converged))]
    targets = [layer._stack(layer.g_plus), layer._stack(layer.g_minus)]
    off = (~ok[0] | ~ok[1]).any(axis=(0, 2))  # (n_in,) slots with a device off target
    slots = np.flatnonzero(off)
    n_in, n_out = layer.shape
    lost = np.zeros((slots.size, n_in, n_out), dtype=bool)
    for ai, oki, ti in zip(a, ok, targets):  # (S, slot, 1, j) against (S, 1, i, j)
        bad = ~oki[:, slots, None, :]
        with np.errstate(invalid="ignore"):
            miss = ~(np.abs(ai[:, slots, None, :] - ti[:, None, :, :]) <= half_width)
        lost |= (bad & miss).any(axis=0)
    return slots, lost


def lost_pairs(layer: MappedLayer, achieved: tuple[Any, Any], converged: tuple[Any, Any], half_width: float, order: Any = None) -> np.ndarray:
    """Which pairs of ``layer`` are lost when its slot ``p`` carries row ``order[p]`` (None: the
    order programmed), as a boolean ``(n_in, n_out)`` array in the layer's row order.
    Arguments as :func:`fault_aware_order`."""
    o = np.arange(layer.shape[0]) if order is None else input_order(order, layer.shape[0])
    slots, lost = _failing(layer, achieved, converged, half_width)
    out = np.zeros(layer.shape, dtype=bool)
    out[o[slots]] = lost[np.arange(slots.size), o[slots]]
    return out


def fault_aware_order(
    layer: MappedLayer, achieved: tuple[Any, Any], converged: tuple[Any, Any], half_width: float, spared: Any = None
) -> np.ndarray:
    """The order of a layer's inputs on its rows that loses the least weight to the devices a
    programming job left off target (module docstring).

    Parameters
    ----------
    layer : MappedLayer
        The layer as it was programmed: its row ``p`` is the input its slot ``p`` carries.
    achieved : (ndarray, ndarray)
        Last read of every G⁺ and G⁻ device, S, in the shape of ``layer.g_plus`` (slot order).
    converged : (ndarray, ndarray)
        Whether each device ended in its window (same shapes).
    half_width : float
        Half-width of the verify window, S: a device off target still serves a target within
        this distance of where it is.
    spared : ndarray of bool (n_in, n_out), optional
        Weights, in the layer's row order, that another copy holds (a pair lost there costs
        nothing).

    Returns
    -------
    ndarray of int, (n_in,)
        ``order[p]`` is the row of ``layer`` that slot ``p`` should carry (the identity when no
        move helps); :meth:`MappedLayer.with_input_order` lays the layer out in that order.
    """
    slots, lost = _failing(layer, achieved, converged, half_width)
    n_in = layer.shape[0]
    if slots.size == 0:
        return np.arange(n_in)
    w = np.abs(layer.target_weights)
    top = float(w.max()) or 1.0
    w = w / top
    if spared is not None:
        sp = np.asarray(spared)
        if sp.shape != layer.shape or sp.dtype != bool:
            raise ValueError(f"spared must be a boolean array of the layer's shape {layer.shape}, got {sp.dtype} {sp.shape}")
        w = np.where(sp, 0.0, w)
    cost = np.zeros((n_in, n_in))  # cost[slot, input]
    cost[slots] = (lost * w[None]).sum(axis=2)
    return least_cost_order(cost)


def least_cost_order(cost: Any) -> np.ndarray:
    """The order of inputs on slots with the least total ``cost[slot, input]``, preferring the
    order already programmed (the identity) where a move gains nothing.

    Parameters
    ----------
    cost : ndarray, (n, n)
        What carrying input ``i`` on slot ``p`` costs, in units where a move is worth making
        only when it saves more than ``1e-9`` (finite, >= 0).

    Returns
    -------
    ndarray of int, (n,)
        ``order[p]``: the input slot ``p`` should carry.
    """
    c = np.asarray(cost, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"cost must be a square (slots, inputs) matrix, got shape {c.shape}")
    if not (np.isfinite(c).all() and (c >= 0).all()):
        raise ValueError("cost must hold finite numbers >= 0")
    _, order = linear_sum_assignment(c + _MOVE_COST * (1.0 - np.eye(c.shape[0])))
    return order.astype(np.int64)


#: what a binary weight left out of sampling stands in by (:func:`binary_off_target`)
STAND_INS = ("mean", "zero")


def _check_stand_in(stand_in: str) -> None:
    if stand_in not in STAND_INS:
        raise ValueError(f"stand_in must be one of {STAND_INS}, got {stand_in!r}")


def binary_off_target(means: Any, realized: Any, stand_in: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Whether a device off target is sampled under its weight, and what it then costs, for one
    device per ±1 weight sampled against a reference (Bayes2IMC).

    A device off target realizes, in a read right after programming, a mean weight ``μ``
    (``2 P(+1) − 1``) that is no longer the trained ``m = tanh λ`` of its weight. Sampled as it
    is, it costs ``|m − μ| + |m² − μ²|``: the error in the weight's mean and in its variance
    ``1 − m²``. Left out, every network takes the weight at its posterior mean
    (``stand_in="mean"``), which costs its variance, ``1 − m²``, or at 0 (``"zero"``), which
    costs ``|m| + 1 − m²``. With the mean stand-in a device is sampled when that costs less than
    leaving it out, so a confident weight (little variance to lose) is left out unless its
    device realizes it almost exactly, and an uncertain one is sampled unless its device is far
    off. With 0 it is sampled when its mean is nearer ``m`` than 0 is, ``|m − μ| < |m|``.
    A device that cannot be sampled (``μ`` NaN) is left out.

    Parameters
    ----------
    means, realized : array_like
        Trained mean weights ``m`` and the mean weights ``μ`` the devices realize, in [-1, 1]
        (broadcast together).
    stand_in : {"mean", "zero"}
        What a weight left out of sampling is taken at.

    Returns
    -------
    sampled : ndarray of bool
        Whether each device is sampled.
    cost : ndarray
        What each device costs under its weight, sampled or left out.
    """
    _check_stand_in(stand_in)
    m, mu = np.asarray(means, dtype=float), np.asarray(realized, dtype=float)
    with np.errstate(invalid="ignore"):
        kept = np.abs(m - mu) + np.abs(m**2 - mu**2)
        out = 1.0 - m**2 + (np.abs(m) if stand_in == "zero" else 0.0)
        sampled = np.abs(m - mu) < np.abs(m) if stand_in == "zero" else kept < out  # NaN: never
    return sampled, np.where(sampled, kept, out)


def binary_fault_order(means: Any, realized: Any, off: Any, stand_in: str = "mean") -> np.ndarray:
    """The order of a binary layer's inputs on its rows that the devices left off target serve
    best, for one device per ±1 weight sampled against a reference (Bayes2IMC).

    Each device off target under the weight an input would put on it is sampled or left out,
    at the cost :func:`binary_off_target` gives for ``stand_in``. A stuck device (``|μ| = 1``)
    thus costs least under a confident weight of its own sign (``m ≈ μ``); an uncertain weight
    (``m ≈ 0``) costs its whole variance on it. Every device off target is taken to stay where
    it is (what a stuck device does).

    Parameters
    ----------
    means : ndarray, (n_in, n_out)
        Trained mean weights ``m`` in [-1, 1], in the layer's row order.
    realized : ndarray, (n_in, n_out)
        Mean weight each device realizes, by row slot (NaN: a device that cannot be sampled,
        e.g. without a working reference: always left out).
    off : ndarray of bool, (n_in, n_out)
        The devices off target, by row slot.
    stand_in : {"mean", "zero"}
        What a weight left out of sampling is taken at (:func:`binary_off_target`).

    Returns
    -------
    ndarray of int, (n_in,)
        ``order[p]``: the row of ``means`` that slot ``p`` should carry (the identity when no
        move lowers the cost; pass ``means`` in the order programmed, so that the identity
        keeps it). The cost counts the devices off target, not the reprogramming a move needs.
    """
    _check_stand_in(stand_in)
    m = np.asarray(means, dtype=float)
    mu = np.asarray(realized, dtype=float)
    off = np.asarray(off)
    if m.ndim != 2 or m.shape[0] == 0 or not (np.isfinite(m).all() and np.abs(m).max(initial=0.0) <= 1.0):
        raise ValueError(f"means must be a (n_in, n_out) matrix of mean weights in [-1, 1], got shape {m.shape}")
    if mu.shape != m.shape or off.shape != m.shape or off.dtype != bool:
        raise ValueError(f"realized and off must have the means' shape {m.shape} (off boolean), got {mu.shape} and {off.dtype} {off.shape}")
    if np.any(np.abs(mu[~np.isnan(mu)]) > 1.0):
        raise ValueError("realized must hold mean weights in [-1, 1] (NaN: a device that cannot be sampled)")
    slots, cols = np.nonzero(off)
    if slots.size == 0:
        return np.arange(m.shape[0])
    w = m[:, cols]  # (n_in, k): the weight each input would put on each device off target
    per_device = binary_off_target(w, mu[slots, cols][None, :], stand_in)[1]
    cost = np.zeros((m.shape[0], m.shape[0]))  # cost[slot, input]
    np.add.at(cost, slots, per_device.T)
    return least_cost_order(cost)
