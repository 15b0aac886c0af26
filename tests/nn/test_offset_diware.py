"""Diware at LeNet scale: the chip's broad level measured through the instruments, the code sets
the level table allows, networks in offset encoding run image by image, and biased training."""

from __future__ import annotations

import numpy as np
import pytest

from labrram import sim
from labrram.station import StationError
from labrram.calibration.files import default_calibration
from labrram.devices.reram import LevelInstability
from labrram.mapping import OffsetSlicedMapping
from labrram.nn.level_table import (
    LevelTable,
    allowed_codes,
    choose_offset,
    code_values,
    forbidden_levels,
    level_cells,
    level_ranking,
    measure_levels,
)
from labrram.nn.offset_network import plan_offset_network, quantize_network, readback_logits, readback_weights, run_offset_network
from labrram.nn.tiled import Conv, Dense, forward, input_ranges
from labrram.sim.chip import ReRAMChip
from labrram.station import load_station

MP = OffsetSlicedMapping()


def station(name: str, seed: int, spread: str, n: int = 32):
    return load_station().with_simulation(bench=name, seed=seed, rows=n, cols=n, level_spread=spread).connect()


def table(std):
    s = np.asarray(std, float)
    return LevelTable(MP.levels, MP.levels, s, np.full(4, 100), np.ones(4), 1.0, 0.0)


def test_instability_is_a_bump_and_checks_its_parameters():
    b = LevelInstability()
    s = b.sigma(np.array([10e-6, 73e-6, b.center, 200e-6]))
    assert s[2] == pytest.approx(b.peak) and s[0] < 1e-3 * b.peak and s[1] < 0.05 * b.peak and s[3] < 0.3 * b.peak
    assert np.all(b.shift(np.full(3, b.center), np.ones(3), np.array([0.0, b.tau, 100 * b.tau])) == pytest.approx([0.0, b.peak * (1 - np.exp(-1)), b.peak]))
    with pytest.raises(ValueError, match="width"):
        LevelInstability(width=0.0)
    with pytest.raises(ValueError, match="level_spread must be one of"):
        ReRAMChip(8, 8, level_spread="broad")
    with pytest.raises(ValueError, match="level_spread must be one of"):
        sim.configure_bench("lt-bad", chip_options={"level_spread": 3})


def test_default_chip_is_unchanged_by_the_option():
    a, b = ReRAMChip(16, 16, seed=3), ReRAMChip(16, 16, seed=3, level_spread="none")
    rows, cols = np.divmod(np.arange(256), 16)
    for chip in (a, b):
        chip.pulse_set(rows, cols, 1.8, 1.6, 1e-6)
        chip.clock.advance(2.0, "wait")
    assert np.array_equal(a.read(rows, cols, 0.2, 4.0), b.read(rows, cols, 0.2, 4.0))
    assert a.reveal_instability() is None and ReRAMChip(4, 4, level_spread="hfox-mlc").reveal_instability() == LevelInstability()


@pytest.mark.parametrize("spread", ["hfox-mlc", "none"])
def test_level_table_measured_through_the_instruments_finds_the_broad_level(spread):
    with station(f"lt-{spread}", 1, spread) as st:
        t = measure_levels(st.crossbar, MP.levels, default_calibration("reram").model, per_level=128, delay=1.0, timer=st.timer)
    assert np.allclose(t.mean, t.targets, rtol=0.05) and t.bench_time > 1.0
    broad = 2 if spread == "hfox-mlc" else None  # write-verify's final check sees the broad level move devices out
    assert all(c > (0.8 if k == broad else 0.95) for k, c in enumerate(t.converged)), t.converged
    order = level_ranking(t, 4).level_order(3)
    if spread == "hfox-mlc":  # the paper's ranking G00 > G01 > G11 > G10
        assert list(order) == [0, 1, 3, 2] and t.std[2] > 1.5 * t.std[3]
    else:  # write-verify's relative tolerance alone: the top level is the broadest
        assert order[-1] == 3 and t.std[2] < t.std[3]


def test_station_selects_the_level_spread():
    st = load_station().with_simulation(bench="lt-station", seed=4, rows=8, cols=8, level_spread="hfox-mlc")
    assert st.simulated_bench().chip.reveal_instability() == LevelInstability()
    assert load_station().with_simulation(bench="lt-station", seed=4, rows=8, cols=8).simulated_bench().chip.reveal_instability() is None
    with pytest.raises(StationError, match="level_spread must be one of"):
        load_station().with_simulation(level_spread="broad")
    with pytest.raises(StationError, match="property of ReRAM chips"):
        load_station().with_simulation(kind="pcm", level_spread="hfox-mlc")


def test_level_cells_put_every_level_in_every_row():
    lev = level_cells((8, 8), 4, 16)
    assert all(np.sum(lev == k) == 16 for k in range(4))
    assert all(set(np.unique(row)) == {0, 1, 2, 3} for row in lev)
    with pytest.raises(ValueError, match="do not fit"):
        level_cells((4, 4), 4, 5)


def test_codes_of_a_table_whose_third_level_is_broad():
    f = forbidden_levels(level_ranking(table([0.5e-6, 2e-6, 12e-6, 5e-6]), 4))
    assert np.array_equal(np.argmax(f, axis=1), [2, 2, 2, 2]) and f.sum() == 4
    u = allowed_codes(f)
    assert u.size == 81 and not np.any(((u[:, None] >> (2 * np.arange(4))) & 3) == 2)
    o = choose_offset(u)
    assert o == 64  # digits 1,0,0,0: zero exact, [-64, 63] reachable
    v = code_values(u, o)
    assert {0, 1, -1, 63, -64} <= set(v.tolist()) and v.min() >= -127 and v.max() <= 127
    with pytest.raises(ValueError, match="zero is not representable"):
        code_values(u, 128)
    # only the top slice: the offset stays where half the codes are
    f3 = forbidden_levels(level_ranking(table([0.5e-6, 2e-6, 12e-6, 5e-6]), 4), slices=[3])
    assert allowed_codes(f3).size == 192


def test_offset_network_in_array_agrees_with_its_read_back():
    rng = np.random.default_rng(0)
    layers = [Conv(rng.normal(0, 0.5, (3, 1, 3, 3)), rng.normal(0, 0.1, 3), pool=2), Dense(rng.normal(0, 0.3, (4, 27)), np.zeros(4))]
    net = quantize_network(layers, MP)
    X = rng.random((6, 1, 8, 8))
    plan = plan_offset_network(net, (1, 8, 8), MP, array_shape=(32, 32))
    assert plan.plans[0].replicas > 1 and plan.devices == sum(4 * p.mapped.codes.size for p in plan.plans)
    with station("offnet", 2, "none") as st:
        run = run_offset_network(st, plan, X, input_ranges(net.layers, X))
    ref = forward(net.layers, X)
    assert np.allclose(readback_logits(run, X, 0.0), ref)  # alpha 0: the quantized software network
    rb = readback_logits(run, X, 1.0)
    rms = lambda a: float(np.sqrt(np.mean(a**2)))  # noqa: E731
    assert rms(run.logits - rb) < 0.1 * rms(ref) and rms(run.logits - ref) < 0.3 * rms(ref)
    assert run.mvms == plan.mvms(6) and run.program_bench_time > plan.arrays * 1.0  # 1 s settle per image
    assert rms(readback_logits(run, X, 8.0) - ref) > rms(rb - ref)


def test_only_misprogrammed_devices_are_corrected_digitally():
    """On a chip with a broad level, devices that relaxed out of their verify band keep their
    error (the level's variation); stuck devices, a level step or more off, are corrected."""
    rng = np.random.default_rng(0)
    layers = [Conv(rng.normal(0, 0.5, (3, 1, 3, 3)), rng.normal(0, 0.1, 3), pool=2), Dense(rng.normal(0, 0.3, (4, 27)), np.zeros(4))]
    net = quantize_network(layers, MP)
    X = rng.random((6, 1, 8, 8))
    plan = plan_offset_network(net, (1, 8, 8), MP, array_shape=(32, 32))
    stuck = [[0, 1], [0, 2]]  # targets 73 and 10 µS in both images
    st = load_station().with_simulation(bench="offnet-stuck", seed=2, rows=32, cols=32, level_spread="hfox-mlc",
                                        faults={"stuck": {"at": 1, "cells": stuck, "state": "lrs"}})  # fmt: skip
    with st.connect() as s:
        run = run_offset_network(s, plan, None, input_ranges(net.layers, X))
    half = np.diff(MP.levels).min() / 2
    for img in run.images:
        fixed = np.argwhere(img.correction != 0).tolist()
        assert all(c in fixed for c in stuck) and img.corrected == len(fixed)
        assert img.failed > img.corrected  # the broad level's devices that moved out of band
        assert np.all(np.abs(img.correction[img.correction != 0]) > half)
        assert np.all(img.read[0, 1:3] > 300e-6)
        # what the read-back maps (and the MVMs) see of the stuck devices: their level (read noise aside)
        assert np.all(np.abs((img.read - img.correction - img.targets)[0, 1:3]) < half)
    assert all(np.all(np.isfinite(w)) for w in readback_weights(run, 1.0))


def test_biased_training_puts_constrained_columns_on_allowed_codes():
    torch = pytest.importorskip("torch")
    from labrram.nn.lenet import LeNet
    from labrram.nn.lenet_biased import conventional_network, lenet_importance, train_biased_lenet

    torch.manual_seed(0)
    base = LeNet(16, (2, 3), (8,))
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 1, 16, 16)).astype(np.float32), rng.integers(0, 10, 64)
    imp = lenet_importance(base, X, y)
    assert [i.shape for i in imp] == [(2,), (3,), (8,), (10,)]
    u = allowed_codes(forbidden_levels(level_ranking(table([0.5e-6, 2e-6, 12e-6, 5e-6]), 4)))
    net, _, _ = train_biased_lenet(base, X, y, code_values(u, 64), 64, MP, fraction=0.5, epochs=1, batch_size=32)
    assert [int(c.sum()) for c in net.constrained] == [1, 2, 4, 5]
    for codes, c, off in zip(net.codes, net.constrained, net.offsets):
        assert np.all(np.isin(codes[:, c], u)) and np.all(off[c] == 64) and np.all(off[~c] == 128)
    conv = conventional_network(base, MP)
    assert not any(c.any() for c in conv.constrained) and conv.digit_histogram()[3, 2] > 0.2
    with pytest.raises(ValueError, match="values must hold 0"):
        train_biased_lenet(base, X, y, [1, 2], 64, MP)
    with pytest.raises(ValueError, match="need their values and offset"):
        train_biased_lenet(base, X, y, None, None, MP, fraction=0.5)
    # the conventional mapping's network with the same fine-tuning: nothing constrained, offset 128
    plain, _, _ = train_biased_lenet(base, X, y, None, None, MP, fraction=0.0, epochs=1, batch_size=32)
    assert not any(c.any() for c in plain.constrained) and all(np.all(o == 128) for o in plain.offsets)
