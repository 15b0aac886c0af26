"""Fault-aware input order: the assignment of a layer's inputs to its rows, the reordered layer,
two programming jobs merged into one result, and the deployment that remaps and reprograms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labrram.calibration.files import default_calibration
from labrram.mapping import BitSlicedMapping, DifferentialMapping, binary_fault_order, binary_off_target, fault_aware_order, least_cost_order, lost_pairs
from labrram.nn.drift import BatchNorm, DeploySettings, Network, deploy_pcm
from labrram.protocols.results import ProgramResult
from labrram.station import load_station

MAP = DifferentialMapping(0.5e-6, 25e-6, scale="column")
HW = 1e-6


def _lost(layer, achieved, converged, order) -> float:
    """Σ|W| of the pairs lost when slot p carries row order[p] (brute-force reference)."""
    total = 0.0
    for p, i in enumerate(order):
        for j in range(layer.shape[1]):
            for g, t, ok in zip(achieved, (layer.g_plus, layer.g_minus), converged):
                if not ok[p, j] and abs(g[p, j] - t[i, j]) > HW:
                    total += abs(layer.target_weights[i, j])
                    break
    return total


def _faulty(layer, cells: dict[tuple[int, int, int], float]):
    """Achieved/converged of a layer programmed perfectly but for ``cells`` ((sign, p, j) -> S)."""
    achieved = [layer.g_plus.copy(), layer.g_minus.copy()]
    converged = [np.ones(layer.shape, bool), np.ones(layer.shape, bool)]
    for (s, p, j), g in cells.items():
        achieved[s][p, j] = g
        converged[s][p, j] = False
    return tuple(achieved), tuple(converged)


def test_no_fault_keeps_the_order():
    lay = MAP.map(np.random.default_rng(0).normal(size=(7, 4)))
    a, c = _faulty(lay, {})
    np.testing.assert_array_equal(fault_aware_order(lay, a, c, HW), np.arange(7))


def test_a_device_stuck_low_goes_under_a_weight_its_partner_carries():
    W = np.array([[2.0, 1.0], [-1.5, 0.5], [0.3, -2.0], [1.0, 1.0]])
    lay = MAP.map(W)
    a, c = _faulty(lay, {(0, 0, 0): 0.01e-6})  # G+ of slot 0, column 0 stuck RESET; slot 0 holds +2.0
    order = fault_aware_order(lay, a, c, HW)
    assert W[order[0], 0] < 0  # now the G- carries that weight; G+ sits at g_min, in its window
    assert (order != np.arange(4)).sum() == 2  # one swap: only two rows to program again
    assert _lost(lay, a, c, order) == 0.0


def test_a_device_stuck_high_goes_under_the_smallest_weight_of_its_column():
    W = np.array([[2.0, 1.0], [-1.5, 0.5], [0.3, -2.0], [1.0, 1.0]])
    lay = MAP.map(W)
    a, c = _faulty(lay, {(1, 3, 1): 100e-6})  # a G- stuck SET: no target of the range is within reach
    order = fault_aware_order(lay, a, c, HW)
    assert order[3] == 1  # |0.5| is the smallest weight of column 1
    assert _lost(lay, a, c, order) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(6))
def test_the_order_loses_the_least_weight_of_every_order(seed):
    rng = np.random.default_rng(seed)
    lay = MAP.map(rng.normal(size=(5, 3)))
    cells = {(int(rng.integers(2)), int(rng.integers(5)), int(rng.integers(3))): float(rng.choice([0.01e-6, 100e-6, 8e-6])) for _ in range(4)}
    a, c = _faulty(lay, cells)
    order = fault_aware_order(lay, a, c, HW)
    best = min(_lost(lay, a, c, p) for p in itertools.permutations(range(5)))
    assert _lost(lay, a, c, order) == pytest.approx(best, abs=1e-12)
    assert _lost(lay, a, c, order) <= _lost(lay, a, c, range(5))
    for o in (order, np.arange(5), np.array([4, 3, 2, 1, 0])):  # lost_pairs says which pairs an order loses
        assert np.abs(lay.target_weights)[lost_pairs(lay, a, c, HW, o)].sum() == pytest.approx(_lost(lay, a, c, o), abs=1e-12)


def test_a_weight_another_copy_holds_costs_nothing():
    W = np.array([[2.0, 1.0], [-1.5, 0.5], [0.3, -2.0], [1.0, 1.0]])
    lay = MAP.map(W)
    a, c = _faulty(lay, {(1, 3, 1): 100e-6})
    spared = np.zeros((4, 2), bool)
    spared[3, 1] = True  # the weight the stuck device holds is safe on another copy: no move
    np.testing.assert_array_equal(fault_aware_order(lay, a, c, HW, spared), np.arange(4))
    spared[:, 1] = True
    spared[1, 1] = False  # every weight of the column is safe elsewhere but row 1's: keep off it
    order = fault_aware_order(lay, a, c, HW, spared)
    assert order[3] != 1 and not lost_pairs(lay, a, c, HW, order)[1, 1]
    with pytest.raises(ValueError, match="spared must be a boolean array"):
        fault_aware_order(lay, a, c, HW, np.zeros((4, 3), bool))


def test_the_order_refuses_bad_input():
    lay = MAP.map(np.ones((3, 2)))
    a, c = _faulty(lay, {})
    with pytest.raises(ValueError, match="achieved \\(plus\\) has shape"):
        fault_aware_order(lay, (np.ones((2, 2)), a[1]), c, HW)
    for bad in (0.0, -1e-6, np.nan, True, "1e-6"):
        with pytest.raises(ValueError, match="half_width"):
            fault_aware_order(lay, a, c, bad)
    with pytest.raises(ValueError, match="achieved must be a pair"):
        fault_aware_order(lay, (a[0], a[1], a[1]), c, HW)
    with pytest.raises(ValueError, match="converged must be a pair"):
        fault_aware_order(lay, a, np.ones((3, 2), bool), HW)
    with pytest.raises(ValueError, match="permutation"):
        lost_pairs(lay, a, c, HW, [0, 0, 1])


def test_a_layer_in_another_order_is_the_reordered_matrix_mapped():
    W = np.random.default_rng(1).normal(size=(6, 3))
    order = np.array([3, 0, 5, 1, 2, 4])
    got, want = MAP.map(W).with_input_order(order), MAP.map(W[order])
    for name in ("g_plus", "g_minus", "gamma", "target_weights"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    bits = BitSlicedMapping(g_min=0.5e-6, g_max=25e-6, bits=6, slice_bits=2)
    got, want = bits.map(W).with_input_order(order), bits.map(W[order])
    for name in ("g_plus", "g_minus", "codes", "target_weights"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    for bad in ([0, 1, 2], [0, 0, 1, 2, 3, 4], np.arange(6.0)):
        with pytest.raises(ValueError, match="permutation of the layer's 6 inputs"):
            MAP.map(W).with_input_order(bad)


def test_two_jobs_merge_into_one_result():
    nan = np.nan
    first = ProgramResult("write-verify-pcm", np.array([[1.0, 2.0], [nan, 4.0]]), np.array([[1.1, 9.0], [nan, 4.0]]),
                          np.array([[True, False], [False, True]]), np.array([[3, 9], [0, 2]]), 10, 1.5, 0.8, 0.5)  # fmt: skip
    later = ProgramResult("write-verify-pcm", np.array([[nan, 3.0], [nan, nan]]), np.array([[nan, 3.05], [nan, nan]]),
                          np.array([[False, True], [False, False]]), np.array([[0, 4], [0, 0]]), 5, 0.5, 0.2, 0.1)  # fmt: skip
    both = first.followed_by(later)
    np.testing.assert_array_equal(both.targets, [[1.0, 3.0], [nan, 4.0]])
    np.testing.assert_array_equal(both.achieved, [[1.1, 3.05], [nan, 4.0]])
    np.testing.assert_array_equal(both.converged, [[True, True], [False, True]])
    np.testing.assert_array_equal(both.pulses, [[3, 13], [0, 2]])
    assert (both.iterations, both.wall_time, both.bench_time, both.physical_limit) == (15, 2.0, pytest.approx(1.0), pytest.approx(0.6))
    assert both.summary()["converged_fraction"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        first.followed_by(ProgramResult("x", np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 2), bool), np.zeros((3, 2), int), 1, 0.0))


# --- on a small simulated PCM array ---------------------------------------------------------
def _net(rng) -> Network:
    W0, W1 = rng.normal(size=(8, 5)), rng.normal(size=(5, 3))
    z = rng.normal(size=(40, 8)) @ W0
    return Network([W0, W1], [None, np.zeros(3)], [BatchNorm(np.ones(5), np.zeros(5), z.mean(0), z.var(0)), None])


def test_deployment_moves_the_inputs_off_the_stuck_devices_and_reads_the_network_back_in_order():
    net = _net(np.random.default_rng(0))
    model = default_calibration("pcm").model
    base = load_station().with_simulation(bench="remap-clean", seed=3, kind="pcm", rows=32, cols=32)
    with base.connect() as st:  # where the devices of the largest weights sit
        plain = deploy_pcm(st.crossbar, st.timer, net, model, DeploySettings(scale="column"))
    rows, cols = plain.placement.cells((0, 0))[1:]
    W0 = net.weights[0]
    big = [np.unravel_index(np.argmax(np.abs(W0[:, j])), W0.shape[0]) for j in (0, 2, 4)]
    stuck = [[int(rows[int(W0[i, j] < 0), i, j]), int(cols[int(W0[i, j] < 0), i, j])] for i, j in zip([b[0] for b in big], (0, 2, 4))]
    faults = {"stuck": {"at": 1, "cells": stuck, "state": "lrs"}}  # stuck SET from the first command
    for remap, bench in ((False, "remap-off"), (True, "remap-on")):
        station = base.with_simulation(bench=bench, faults=faults)
        with station.connect() as st:
            dep = deploy_pcm(st.crossbar, st.timer, net, model, DeploySettings(scale="column", remap_inputs=remap))
            read = dep.read_weights(st.crossbar)
            s = dep.summary()
            if not remap:
                lost_plain, faulty_plain, pulses_plain = s["lost_weight"], dep.faulty()[0], dep.result.pulses
                targets_plain = dep.placement.targets(0)
                assert s["before_remap"] is None and s["remapped_inputs"] == 0 and not dep.orders
                continue
            assert s["before_remap"] == {"faulty_weights": int(faulty_plain.sum()), "lost_weight": pytest.approx(lost_plain)}
            assert s["lost_weight"] < lost_plain / 2 and s["remapped_inputs"] >= 2
            order = dep.orders[(0, 0)]
            assert sorted(order) == list(range(8)) and (0, 0) in dep.orders
            # the same chip and first job as without remapping; the second job pulsed only the
            # rows whose input changed, and the merged result holds the deployed targets
            moved = np.flatnonzero(order != np.arange(8))
            rows_moved = set()
            for k, o in dep.orders.items():
                r = dep.placement.cells(k)[1]
                rows_moved |= set(r[:, np.flatnonzero(o != np.arange(o.size))].ravel().tolist())
            pulsed_again = dep.result.pulses != pulses_plain
            assert pulsed_again.any() and set(np.nonzero(pulsed_again)[0].tolist()) <= rows_moved
            deployed = dep.placement.targets(0)
            changed = ~np.isnan(deployed) & (deployed != targets_plain)  # only the cells whose target changed
            assert not np.any(pulsed_again & ~changed)
            np.testing.assert_array_equal(dep.result.targets, deployed)
            # read back in the network's order: every healthy weight near its target
            ok = ~dep.faulty()[0]
            assert np.abs(read[0] - W0)[ok].max() < 0.25 * np.abs(W0).max()
            assert np.all(read[0][~ok] == 0.0)
            np.testing.assert_allclose(dep.weights_from(dep.placement.targets(0), mask_faulty=False)[0], W0, rtol=1e-9, atol=1e-12)
            # the in-array MVM takes the inputs in the rows' order
            X = np.random.default_rng(1).uniform(-1, 1, size=(4, 8))
            y = dep.mvm(st.crossbar, 0, X)
            expect = X @ dep.weights_from(st.crossbar.read(), mask_faulty=False)[0]
            assert np.abs(y - expect).max() < 0.15 * np.abs(expect).max()
            assert moved.size == s["remapped_inputs"]


@pytest.mark.parametrize("seed", [4, 5])
def test_deployment_on_the_chips_own_faults(seed, tmp_path):
    """Chip 4 comes out of fabrication with a device that costs a weight of the network, chip 5
    with none: the first is remapped and loses less, the second keeps the network's order."""
    net = _net(np.random.default_rng(2))
    station = load_station().with_simulation(bench=f"remap-own-{seed}", seed=seed, kind="pcm", rows=32, cols=32)
    out = tmp_path / "deploy.zarr"
    with station.connect() as st:
        dep = deploy_pcm(st.crossbar, st.timer, net, default_calibration("pcm").model, DeploySettings(scale="column", remap_inputs=True), out=str(out))
    s = dep.summary()
    if seed == 4:
        assert dep.before_remap["faulty_weights"] == 1 and s["remapped_inputs"] >= 2
        assert s["lost_weight"] < dep.before_remap["lost_weight"] / 2
        assert out.is_dir() and (tmp_path / "deploy-remap.zarr").is_dir()  # each job recorded in its own run store
    else:
        assert dep.before_remap == {"faulty_weights": 0, "lost_weight": 0.0}
        assert not dep.orders and s["remapped_inputs"] == 0 and s["lost_weight"] == 0.0
        assert out.is_dir() and not (tmp_path / "deploy-remap.zarr").exists()
    with pytest.raises(ValueError, match="remap_inputs must be True or False"):
        DeploySettings(remap_inputs="yes")


def test_a_pcm_device_stuck_by_a_fault_plan_reads_where_fabrication_would_leave_it():
    model = default_calibration("pcm").model
    faults = {"stuck": {"at": 1, "cells": [[0, 0]], "state": "lrs"}, "dead": {"at": 1, "cells": [[0, 2]]}}
    station = load_station().with_simulation(bench="pcm-stuck", seed=5, kind="pcm", rows=8, cols=8, faults=faults)
    with station.connect() as st:
        targets = np.full((8, 8), np.nan)
        targets[0, :4] = 10e-6
        from labrram.protocols.write_verify_pcm import write_verify_pcm

        res = write_verify_pcm(st.crossbar, targets)
        g = st.crossbar.read()
    assert g[0, 0] > 3 * model.g_max and not res.converged[0, 0]  # a short: far above the range, never in its window
    assert not res.converged[0, 2]  # the dead device never switched
    assert res.converged[0, 1] and res.converged[0, 3]
    with pytest.raises(Exception, match="reram and pcm chips only"):
        load_station().with_simulation(bench="passive-stuck", kind="passive", faults=faults)


def test_copies_are_remapped_each_given_the_others():
    """Two copies of a layer, each with a device stuck high in the same column at a different
    input: every weight still has a healthy copy, so nothing is lost and nothing needs to move;
    ordered one by one, both copies would put their stuck device under the column's smallest
    weight and lose it."""
    net = _net(np.random.default_rng(0))
    model = default_calibration("pcm").model
    base = load_station().with_simulation(bench="remap-copies-clean", seed=3, kind="pcm", rows=32, cols=32)
    with base.connect() as st:
        plain = deploy_pcm(st.crossbar, st.timer, net, model, DeploySettings(scale="column", copies=2))
    W0, j = net.weights[0], 1
    a, b = np.flatnonzero(W0[:, j] > 0)[:2]  # their G- sit at g_min: a device stuck high loses the pair
    stuck = []
    for m, i in ((0, a), (1, b)):
        _, r, c = plain.placement.cells((0, m))
        stuck.append([int(r[1, i, j]), int(c[1, i, j])])
    station = base.with_simulation(bench="remap-copies", faults={"stuck": {"at": 1, "cells": stuck, "state": "lrs"}})
    with station.connect() as st:
        dep = deploy_pcm(st.crossbar, st.timer, net, model, DeploySettings(scale="column", copies=2, remap_inputs=True))
    healthy = dep.healthy()[0]
    assert not healthy[0, a, j] and not healthy[1, b, j]  # each copy lost one pair...
    assert dep.summary()["faulty_weights"] == 0 and dep.lost_weight() == 0.0  # ...and no weight
    assert not dep.orders


# --- one device per ±1 weight (Bayes2IMC) -------------------------------------------------------
def test_least_cost_order_keeps_the_programmed_order_unless_a_move_saves():
    assert np.array_equal(least_cost_order(np.zeros((4, 4))), np.arange(4))
    cost = np.zeros((3, 3))
    cost[0, 0] = 1.0  # input 0 on slot 0 costs; anywhere else nothing
    order = least_cost_order(cost)
    assert order[0] != 0 and sorted(order) == [0, 1, 2]
    for bad, match in [(np.zeros((2, 3)), "square"), (np.full((2, 2), np.nan), "finite"), (-np.ones((2, 2)), ">= 0")]:
        with pytest.raises(ValueError, match=match):
            least_cost_order(bad)


def _binary_cost(m, mu, off, order, stand_in="zero") -> float:
    """Total cost of ``order`` by the rule binary_off_target documents (brute-force reference):
    the cheaper of sampling and the stand-in with the mean; with 0, sampled when nearer than 0."""
    total = 0.0
    for p, i in enumerate(order):
        for j in range(m.shape[1]):
            if off[p, j]:
                w, u = m[i, j], mu[p, j]
                kept = abs(w - u) + abs(w * w - u * u)
                if stand_in == "mean":
                    total += min(kept, 1 - w * w) if not np.isnan(u) else 1 - w * w
                else:
                    total += kept if abs(w - u) < abs(w) else abs(w) + 1 - w * w
    return total


def test_binary_fault_order_puts_stuck_devices_under_confident_weights_of_their_sign():
    m = np.array([[0.0, 0.1], [0.99, -0.2], [-0.99, 0.3], [0.5, 0.5]])
    mu = np.zeros_like(m)
    off = np.zeros(m.shape, bool)
    assert np.array_equal(binary_fault_order(m, mu, off, "zero"), np.arange(4))  # nothing off target
    off[0, 0], mu[0, 0] = True, 1.0  # slot 0's first device stuck high: row 1 (+0.99) serves it
    off[3, 0], mu[3, 0] = True, -1.0  # slot 3's stuck low: row 2 (−0.99) serves it
    order = binary_fault_order(m, mu, off, "zero")
    assert order[0] == 1 and order[3] == 2
    # the cost of the uncertain row 0 on a stuck device is its whole variance, not its mean error
    # of 0: a mean-only cost would have kept it there
    assert _binary_cost(m, mu, off, order) == pytest.approx(min(_binary_cost(m, mu, off, p) for p in itertools.permutations(range(4))))
    assert _binary_cost(m, mu, off, order) < 0.1 < _binary_cost(m, mu, off, range(4))
    off2 = off.copy()
    off2[1, 1], mu[1, 1] = True, np.nan  # a device that cannot be sampled: left out whatever it carries
    order2 = binary_fault_order(m, mu, off2, "zero")
    assert order2[0] == 1 and order2[3] == 2
    assert _binary_cost(m, mu, off2, order2) == pytest.approx(min(_binary_cost(m, mu, off2, p) for p in itertools.permutations(range(4))))


@pytest.mark.parametrize("stand_in", ["mean", "zero"])
def test_binary_fault_order_matches_brute_force_on_random_layers(stand_in):
    rng = np.random.default_rng(4)
    for _ in range(20):
        m = np.tanh(rng.normal(0, 2, (5, 3)))
        mu = rng.choice([-1.0, 1.0, 0.3, np.nan], size=m.shape, p=[0.3, 0.3, 0.3, 0.1])
        off = rng.random(m.shape) < 0.3
        order = binary_fault_order(m, mu, off, stand_in)
        best = min(_binary_cost(m, mu, off, p, stand_in) for p in itertools.permutations(range(5)))
        assert _binary_cost(m, mu, off, order, stand_in) == pytest.approx(best, abs=1e-6)


def test_a_device_off_target_is_sampled_when_that_costs_less_than_its_stand_in():
    """At the posterior mean a weight left out loses only its variance: a confident weight's
    device is left out unless it realizes the weight almost exactly, an uncertain one's is
    sampled unless it is far off; at 0 the mean alone decides."""
    m = np.array([0.99, 0.99, 0.99, 0.0, 0.0, 0.5, 0.5])
    mu = np.array([1.0, 0.9, -0.5, 0.3, 0.9, np.nan, 0.2])
    sampled, cost = binary_off_target(m, mu)
    assert sampled.tolist() == [False, False, False, True, False, False, True]
    assert cost == pytest.approx([1 - 0.99**2] * 3 + [0.3 + 0.09, 1.0, 0.75, 0.3 + 0.21])
    zero, zero_cost = binary_off_target(m, mu, "zero")
    assert zero.tolist() == [True, True, False, False, False, False, True]
    assert zero_cost[2] == pytest.approx(0.99 + 1 - 0.99**2) and zero_cost[0] == pytest.approx(0.01 + 1 - 0.99**2)
    with pytest.raises(ValueError, match="stand_in must be one of \\('mean', 'zero'\\), got 'drop'"):
        binary_off_target(m, mu, "drop")
    with pytest.raises(ValueError, match="stand_in must be one of"):
        binary_fault_order(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2), bool), "drop")


def test_binary_fault_order_names_bad_input():
    m = np.zeros((3, 2))
    with pytest.raises(ValueError, match="in \\[-1, 1\\]"):
        binary_fault_order(m + 2, m, m.astype(bool))
    with pytest.raises(ValueError, match="off boolean"):
        binary_fault_order(m, m, m)
    with pytest.raises(ValueError, match="shape"):
        binary_fault_order(m, np.zeros((2, 2)), m.astype(bool))
    with pytest.raises(ValueError, match="realized must hold mean weights"):
        binary_fault_order(m, np.full((3, 2), np.inf), m.astype(bool))
