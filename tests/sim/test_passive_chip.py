import math
import time

import numpy as np
import pytest

from labrram import sim
from labrram.circuit import CrossbarCircuit
from labrram.devices.passive import PassiveDeviceModel
from labrram.sim.chip import PulseKind
from labrram.sim.passive_chip import PassiveChip

QUIET = PassiveDeviceModel(read_noise_rel=0.0, read_noise_floor=0.0)


def all_cells(chip):
    rr, cc = np.indices((chip.rows, chip.cols))
    return rr.ravel(), cc.ravel()


def test_interface_and_bookkeeping():
    chip = PassiveChip(8, 6, seed=2)
    assert chip.kind == "passive" and chip.info.kind == "passive"
    assert (chip.info.rows, chip.info.cols) == (8, 6) and chip.info.serial == "PX000002"
    assert chip.bias_scheme == "V/2"
    i = chip.read(np.array([[1, 2], [3, 4]]), np.array([[0, 1], [2, 3]]), 0.2, gate=3.3)
    assert i.shape == (2, 2) and np.all(i > 0)
    assert chip.read_count == 4 and chip.max_read_voltage == 0.2
    chip.pulse_set([1, 2], [3, 3], 1.5, 0.0, 1e-6)
    chip.pulse_reset(np.array([0]), np.array([0]), 1.6, 0.0, 1e-6, source=1)
    chip.bias(0, 1, 0.1, 0.0, 1e-3)
    log = chip.pulse_log.records
    assert list(log["kind"]) == [PulseKind.SET, PulseKind.SET, PulseKind.RESET, PulseKind.BIAS]
    assert list(log["source"]) == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        chip.bias_scheme = "V/4"
    with pytest.raises(IndexError):
        chip.read(np.array([8]), np.array([0]), 0.2, 0.0)
    with pytest.raises(ValueError):
        chip.mvm(np.zeros(5), 0.0)
    with pytest.raises(TypeError):
        PassiveChip(4, 4, nominal=object())


def test_seeded_and_reproducible():
    def run(seed):
        chip = PassiveChip(16, 16, seed=seed)
        chip.pulse_set(np.arange(16), np.arange(16), 1.6, 0.0, 1e-6)
        return chip, chip.read(*all_cells(chip), 0.2, 0.0)

    (a, ia), (b, ib), (c, ic) = run(3), run(3), run(4)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a._conductance(*all_cells(a)), b._conductance(*all_cells(b)))
    assert a.reveal_truth() == b.reveal_truth() != c.reveal_truth()
    assert not np.array_equal(ia, ic)


def test_reads_go_through_the_circuit_with_sneak_paths():
    chip = PassiveChip(12, 10, seed=1, nominal=QUIET)
    truth = chip.reveal_truth()
    rows, cols = all_cells(chip)
    g = chip._conductance(rows, cols).reshape(12, 10)
    ref = CrossbarCircuit(g, truth.a, truth.r_wire_row, truth.r_wire_col)
    for scheme in ("V/2", "V/3", "ground", "float"):
        chip.bias_scheme = scheme
        measured = chip.read(rows, cols, 0.2, 3.3).reshape(12, 10)
        np.testing.assert_allclose(measured, ref.read_all(0.2, scheme), rtol=1e-9)
    # sneak currents: V/2 reads more than V/3, ground about the cell alone
    chip.bias_scheme = "V/2"
    i2 = chip.read(rows, cols, 0.2, 0)
    chip.bias_scheme = "V/3"
    i3 = chip.read(rows, cols, 0.2, 0)
    chip.bias_scheme = "ground"
    ig = chip.read(rows, cols, 0.2, 0)
    alone = truth.current(chip._conductance(rows, cols), 0.2)
    assert np.all(i2 > i3) and np.all(i3 > alone)
    assert np.all(np.abs(ig / alone - 1) < 0.02)
    # a few cells (exact Newton) agree with the whole-array path
    chip.bias_scheme = "V/2"
    few = chip.read(np.array([3, 7]), np.array([2, 9]), 0.2, 0)
    np.testing.assert_allclose(few, i2.reshape(12, 10)[[3, 7], [2, 9]], rtol=1e-6)


def test_read_noise_is_per_device_and_about_one_percent():
    chip = PassiveChip(4, 4, seed=0)
    chip.bias_scheme = "ground"
    i = chip.read(np.full(4000, 1), np.full(4000, 2), 0.2, 0.0)
    truth = chip.reveal_truth()
    assert 0.5 * truth.read_noise_rel < np.std(i) / np.mean(i) < 2 * truth.read_noise_rel


def test_set_reset_and_subthreshold_pulses():
    chip = PassiveChip(8, 8, seed=5)
    truth = chip.reveal_truth()
    g0 = chip._g.copy()
    chip.pulse_set(np.array([2]), np.array([3]), 0.8 * truth.v_set, 0.0, 1e-6)  # below threshold
    assert chip._g[2, 3] == g0[2, 3]
    chip.pulse_set(np.array([2]), np.array([3]), 1.8, 0.0, 5e-6)
    g_set = chip._g[2, 3]
    assert g_set > g0[2, 3]
    chip.pulse_reset(np.array([2]), np.array([3]), 1.9, 0.0, 5e-6)
    assert chip._g[2, 3] < g_set
    assert truth.g_min <= chip._g.min() and chip._g.max() <= truth.g_max
    # repeated pulses in one batch act in order (the window makes later steps smaller)
    chip2 = PassiveChip(8, 8, seed=5)
    chip2.pulse_set(np.array([2, 2, 2]), np.array([3, 3, 3]), 1.8, 0.0, 5e-6)
    assert chip2._g[2, 3] > g_set
    # the circuit follows the devices
    np.testing.assert_array_equal(chip.circuit.g, chip._g)


def test_half_select_disturb_accumulates_slowly_on_the_selected_lines():
    chip = PassiveChip(8, 8, seed=7)
    g0 = chip._g.copy()
    n = 20_000
    chip.pulse_set(np.zeros(n, int), np.zeros(n, int), 1.7, 0.0, np.full(n, 1e-6))  # V/2: 0.85 V
    half = np.zeros((8, 8), bool)
    half[0, 1:] = half[1:, 0] = True
    truth = chip.reveal_truth()
    window = truth.g_max - truth.g_min
    drift = (chip._g - g0) / window  # in fractions of the window
    assert np.all(drift[half] >= 0) and 0 < np.mean(drift[half]) < 0.5  # SET-direction, partial
    np.testing.assert_array_equal(chip._g[1:, 1:], g0[1:, 1:])  # V/2 leaves other cells at 0 V
    # a few pulses hardly disturb
    chip2 = PassiveChip(8, 8, seed=7)
    chip2.pulse_set(np.zeros(20, int), np.zeros(20, int), 1.7, 0.0, 1e-6)
    assert np.max(np.abs(chip2._g[half] - g0[half])) / window < 0.02


def test_bias_scheme_decides_what_half_selected_cells_see():
    # ground: the whole selected row sees the full write voltage and switches
    chip = PassiveChip(6, 6, seed=3)
    chip.bias_scheme = "ground"
    g0 = chip._g.copy()
    chip.pulse_set(np.array([2]), np.array([2]), 1.8, 0.0, 5e-6)
    assert np.all(chip._g[2] > g0[2])
    np.testing.assert_array_equal(np.delete(chip._g, 2, axis=0), np.delete(g0, 2, axis=0))
    # an over-voltage V/2 write (V/2 above threshold) switches the half-selected cells too
    chip = PassiveChip(6, 6, seed=3)
    g0 = chip._g.copy()
    chip.pulse_set(np.array([2]), np.array([2]), 2.6, 0.0, 5e-6)
    assert np.all(chip._g[2] > g0[2]) and np.all(chip._g[:, 2] > g0[:, 2])
    # exact-circuit write voltages: the far half-selected cells see less than V/2
    chip = PassiveChip(6, 6, seed=3, write_voltage_model="circuit")
    chip.pulse_set(np.array([0]), np.array([5]), 1.6, 0.0, 1e-6)
    assert chip._g[0, 5] > g0[0, 5]


def test_tuning_imprecision_of_programmed_values():
    nominal = PassiveDeviceModel(
        g_init_sigma_log=0.0, v_th_d2d_rel=0.0, rate_d2d_rel=0.0, rate_c2c_rel=0.0,
        tuning_sigma_rel=0.02, tuning_tolerance_rel=0.06, disturb_rate=0.0,
    )  # fmt: skip
    chip = PassiveChip(32, 32, seed=11, nominal=nominal)
    truth = chip.reveal_truth()
    rows, cols = all_cells(chip)
    g0 = chip._g[0, 0]
    chip.pulse_set(rows, cols, 1.6, 0.0, 1e-6)
    rel = chip._g.ravel() / truth.pulse_response(g0, 1.6, 1e-6) - 1
    sigma = truth.tuning_sigma_rel
    c = truth.tuning_tolerance_rel / sigma
    sd = sigma * math.sqrt(1 - 2 * c * math.exp(-c * c / 2) / math.sqrt(2 * math.pi) / math.erf(c / math.sqrt(2)))
    assert np.all(np.abs(rel) <= truth.tuning_tolerance_rel + 1e-12)
    assert np.std(rel) == pytest.approx(sd, rel=0.1)
    assert abs(np.mean(rel)) < 4 * sd / math.sqrt(rel.size)


def test_mvm_and_bias_match_the_circuit():
    chip = PassiveChip(10, 7, seed=4, nominal=QUIET)
    truth = chip.reveal_truth()
    ref = CrossbarCircuit(chip._g, truth.a, truth.r_wire_row, truth.r_wire_col)
    v = np.linspace(0.0, 0.2, 10)
    np.testing.assert_allclose(chip.mvm(v, 3.3), ref.mvm(v), rtol=1e-9)
    chip.bias_scheme = "ground"
    i = chip.bias(3, 4, 0.1, 3.3, 0.0)
    rows_cells = truth.current(chip._g[3], 0.1)  # the SMU feeds the whole row at ground
    assert i == pytest.approx(rows_cells.sum(), rel=0.01)
    chip.bias_scheme = "V/2"  # the other row cells are half-selected: they see V/2
    half = truth.current(chip._g[3], 0.05)
    expected = half.sum() - half[4] + rows_cells[4]
    assert chip.bias(3, 4, 0.1, 3.3, 0.0) == pytest.approx(expected, rel=0.01)


def test_bench_builds_a_passive_chip():
    bench = sim.configure_bench("passive-test", kind="passive", rows=8, cols=8, chip_options={"bias_scheme": "V/3"})
    try:
        assert isinstance(bench.chip, PassiveChip) and bench.chip.bias_scheme == "V/3"
    finally:
        bench.shutdown()


def test_small_arrays_are_cheap():
    t0 = time.perf_counter()
    for seed in range(20):
        chip = PassiveChip(8, 8, seed=seed)
        chip.read(*all_cells(chip), 0.2, 0.0)
    assert time.perf_counter() - t0 < 2.0  # ~5 ms each; generous for a busy machine


@pytest.mark.slow
def test_whole_array_read_128_is_fast():
    chip = PassiveChip(seed=0)
    rows, cols = all_cells(chip)
    t0 = time.perf_counter()
    chip.read(rows, cols, 0.2, 0.0)
    cold = time.perf_counter() - t0
    chip.pulse_set(np.array([5, 9]), np.array([7, 100]), 1.6, 0.0, 1e-6)
    t0 = time.perf_counter()
    chip.read(rows, cols, 0.2, 0.0)
    warm = time.perf_counter() - t0
    assert cold < 2.0 and warm < 1.0


def _noise_free(**kw):
    base = dict(rate_c2c_rel=0.0, tuning_sigma_rel=0.0, read_noise_rel=0.0, read_noise_floor=0.0)
    return PassiveDeviceModel(**{**base, **kw})


@pytest.mark.parametrize("scheme", ["V/2", "V/3", "ground"])
def test_vectorized_write_path_equals_cell_by_cell_physics(scheme):
    # zero wire resistance: the exact circuit voltages are the ideal ones, so the per-pulse
    # circuit path and the vectorized path must agree pulse for pulse (no noise, no disturb)
    nominal = _noise_free(disturb_rate=0.0, r_wire_row=0.0, r_wire_col=0.0)
    rows = np.array([0, 1, 1, 3, 0, 1, 2, 2])
    cols = np.array([0, 2, 2, 1, 3, 2, 0, 3])
    amp = np.array([1.5, 1.9, 2.3, 1.2, 2.2, 1.7, 0.5, 1.95])  # some half-selects over threshold
    fast = PassiveChip(4, 5, seed=9, nominal=nominal, bias_scheme=scheme)
    slow = PassiveChip(4, 5, seed=9, nominal=nominal, bias_scheme=scheme, write_voltage_model="circuit")
    for chip in (fast, slow):
        chip.pulse_set(rows, cols, amp, 0.0, 2e-6)
        chip.pulse_reset(rows[::-1], cols[::-1], amp, 0.0, 1e-6)
    np.testing.assert_allclose(fast._g, slow._g, rtol=1e-12)
    assert not np.array_equal(fast._g, PassiveChip(4, 5, seed=9, nominal=nominal)._g)


def test_separable_disturb_rates_equal_direct_sum():
    chip = PassiveChip(5, 6, seed=2, bias_scheme="V/3")
    rows, cols = np.array([0, 4, 2, 2]), np.array([5, 0, 3, 3])
    v, w = np.array([1.6, -1.5, 1.0, 0.4]), np.array([1e-6, 2e-6, 1e-6, 5e-6])
    for scheme in ("V/2", "V/3", "ground"):
        chip.bias_scheme = scheme
        a_set, a_reset = np.zeros((5, 6)), np.zeros((5, 6))
        b_set, b_reset = np.zeros((5, 6)), np.zeros((5, 6))
        g0 = chip._g.copy()
        if scheme == "ground":
            v = np.minimum(v, 0.9)  # stay below every threshold on the selected rows
        assert chip._stress_ideal(rows, cols, v, w, a_set, a_reset)
        chip._g[:] = g0
        chip._stress_each(rows, cols, v, w, b_set, b_reset, circuit=False)
        chip._g[:] = g0
        np.testing.assert_allclose(a_set, b_set, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(a_reset, b_reset, rtol=1e-9, atol=1e-300)
