"""Hardware-aware training for passive crossbars (Drolet et al.): transfer path, error model,
training, Monte Carlo trial."""

from __future__ import annotations

import numpy as np
import pytest

from labrram.calibration.files import default_calibration
from labrram.circuit import CrossbarCircuit
from labrram.nn import hardware_aware as ha
from labrram.nn.datasets import load_task


@pytest.fixture(scope="module")
def model():
    return default_calibration("passive").model


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((3, 8)), rng.standard_normal((9, 2))]


def test_transfer_lays_84_devices_and_corrects_the_read(model, weights):
    tr = ha.transfer(weights, model, np.random.default_rng(1), "V/2")
    used = np.isfinite(tr.targets)
    assert used.sum() == 84 and tr.g.shape == (32, 32)
    assert np.all((tr.g >= model.g_min * 0.9) & (tr.g <= model.g_max * 1.1))
    # the sneak-path read error: the unused cells off their believed median shift every
    # device's read-out of a column alike (up to the device's own deviation)
    assert np.abs(tr.read_error[used]).max() > 1e-6
    # effective weights stay close to the targets
    for w, W in zip(tr.weights, weights):
        assert np.abs(w - W).max() < 0.5 * np.abs(W).max()


@pytest.mark.parametrize("scheme", ["V/2", "V/3"])
def test_fast_path_reaches_the_verify_loops_fixed_point(model, weights, scheme):
    """Without imprecision and read noise, every device the window lets reach it reads its
    target through the chip's circuit (sneak paths, wires, nonlinearity) within a tenth of
    the tuner's band; the others sit at the window edge their read-out pushes them to."""
    tm = ha.TransferModel(sigma_abs=0.0, sigma_rel=0.0, read_noise_rel=0.0)
    tr = ha.transfer(weights, model, np.random.default_rng(3), scheme, tuning=tm)
    rows, cols = np.nonzero(np.isfinite(tr.targets))
    tgt = np.clip(tr.targets[rows, cols], model.g_min, model.g_max)
    g = tr.g[rows, cols]
    read = g + tr.read_error[rows, cols]
    band = np.maximum(tm.tolerance * tgt, tm.abs_tolerance)
    chip_lo, chip_hi = g.min(), g.max()
    at_edge = np.isclose(g, chip_lo) | np.isclose(g, chip_hi)
    assert np.all(np.abs(read - tgt)[~at_edge] <= 0.1 * band[~at_edge])
    assert (~at_edge).sum() > 40
    # and the true conductances differ from the targets by the column offsets (the error)
    assert np.sqrt(np.mean((g - tgt) ** 2)) > 0.5e-6


def test_column_step_solves_the_column_model():
    err = np.array([1.0, 2.0, -1.0, 0.5])
    cols = np.array([0, 0, 0, 1])
    free = np.array([True, True, False, True])
    r = 0.4
    d = ha._column_step(err, cols, free, 1.0, r)
    assert d[2] == 0.0
    # each free device's read-out change cancels its error
    for i in (0, 1, 3):
        mates = (cols == cols[i]) & (np.arange(4) != i)
        assert d[i] + r * d[mates].sum() == pytest.approx(-err[i])


def test_transfer_model_of_the_measured_calibration():
    cal = default_calibration("passive")
    tm = ha.TransferModel.of_calibration(cal)
    assert tm.sigma_abs == cal.protocol_estimates["tune_sigma_abs"].value
    assert tm.sigma_rel == cal.protocol_estimates["tune_sigma_rel"].value
    assert tm.read_noise_rel == cal.estimates["read_noise_sensed_rel"].value
    assert ha.TransferModel.of_calibration(cal, rounds=3).rounds == 3
    with pytest.raises(ValueError, match="sigma_abs"):
        ha.TransferModel(sigma_abs=-1e-6)
    with pytest.raises(ValueError, match="rounds"):
        ha.TransferModel(rounds=1.5)


def test_pulse_level_trial_is_a_function_of_its_seed(weights):
    w = [x.tolist() for x in weights]
    r = ha.pulse_transfer_trial(0, 7, w, "V/3", max_iterations=6)
    assert r["correct"].shape == (300,) and r["correct"].dtype == np.int8
    assert 0 < r["pulses_per_device"] and 0 <= r["converged_fraction"] <= 1
    assert r["g_err_rms"] > 0 and r["unused_drift_rms"] >= 0
    again = ha.pulse_transfer_trial(0, 7, w, "V/3", max_iterations=6)
    assert np.array_equal(r["correct"], again["correct"]) and r["g_err_rms"] == again["g_err_rms"]


def test_v3_errs_less_than_v2(model, weights):
    e2 = ha.estimate_errors(model, "V/2", n_transfers=4)
    e3 = ha.estimate_errors(model, "V/3", n_transfers=4)
    assert e3.s_col < e2.s_col and e2.s_rel == model.tuning_sigma_rel
    assert 0 < e2.s_col < 0.2 * model.g_max


def test_array_forward_matches_exact_nodal_mvm(model, weights):
    tr = ha.transfer(weights, model, np.random.default_rng(2), "V/3")
    X = np.array([[0.3, -0.8], [-1.2, 0.5]])
    scales = [2.0, 4.0]
    fast = ha.array_forward(tr, X, scales)
    # first layer by the exact Newton solve of the circuit
    circuit = CrossbarCircuit(tr.g, tr.a, tr.r_row, tr.r_col)
    tile = tr.placement.tiles_of(0)[0]
    s = 0.2 / scales[0]
    for b in range(2):
        v = np.zeros(32)
        v[tile.rows] = np.append(X[b], 1.0) * s
        cur = circuit.mvm(v)[tile.cols]
        exact = (cur[0::2] - cur[1::2]) / (tr.mapped[0].gamma * s)
        ref = ha.forward([tr.weights[0]], X[b : b + 1])[0]
        assert np.allclose(exact, ref, rtol=0.1, atol=0.05 * np.abs(ref).max())
    assert np.all(np.isfinite(fast)) and fast.shape == (2, 2)


def test_metric():
    c = np.array([[1, 1, 0], [1, 0, 0]] * 10)
    assert np.allclose(ha.correct_fraction(c), [1.0, 0.5, 0.0])
    assert ha.robust_fraction(c) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        ha.correct_fraction(np.ones(3))


def test_bad_arguments(model, weights):
    with pytest.raises(ValueError, match="scheme"):
        ha.transfer(weights, model, np.random.default_rng(0), "V/4")
    with pytest.raises(ValueError, match="hidden"):
        ha.HardwareAwareSettings(hidden=0)
    with pytest.raises(ValueError, match="dropout"):
        ha.HardwareAwareSettings(dropout=1.0)


def test_training_and_trial_end_to_end(model):
    task = load_task("moons", seed=0)
    s = ha.HardwareAwareSettings(epochs=300)
    errors = ha.estimate_errors(model, "V/2", n_transfers=2)
    w = ha.train_network(task.X_train, task.y_train, s, errors)
    assert [x.shape for x in w] == [(3, 8), (9, 2)]
    assert all(np.abs(x).max() < s.w_max * 1.2 for x in w)  # the range regularizer
    sw = np.mean(np.argmax(ha.forward(w, task.X_test), axis=1) == task.y_test)
    assert sw > 0.9
    r = ha.transfer_trial(0, 123, [x.tolist() for x in w], "V/2")
    assert r["correct"].shape == (300,) and r["correct"].dtype == np.int8
    assert r["accuracy"] > 0.7
    again = ha.transfer_trial(0, 123, [x.tolist() for x in w], "V/2")
    assert np.array_equal(r["correct"], again["correct"])  # a trial is a function of its seed


@pytest.mark.slow
def test_hardware_aware_beats_regular_over_many_transfers(model, tmp_path):
    from labrram.montecarlo import run_study

    task = load_task("moons", seed=0)
    reg = ha.train_network(task.X_train, task.y_train)
    aware = ha.train_network(task.X_train, task.y_train, errors=ha.estimate_errors(model, "V/2"))
    metric = {}
    for name, w in (("regular", reg), ("aware", aware)):
        res = run_study("labrram.nn.hardware_aware:transfer_trial", 100, {"weights": [x.tolist() for x in w], "scheme": "V/2"},
                        seed=1, out=tmp_path / f"{name}.zarr", workers=2)
        metric[name] = ha.robust_fraction(res["correct"])
    assert metric["aware"] > metric["regular"] + 0.2


def test_pulse_level_transfer_classifies_like_the_fast_path(model):
    from labrram import sim
    from labrram.station import load_station

    task = load_task("moons", seed=0)
    w = ha.train_network(task.X_train, task.y_train, ha.HardwareAwareSettings(epochs=300))
    scales = ha.activation_scales(w, task.X_train)
    sim.configure_bench("drolet-pulse", seed=1, kind="passive", rows=32, cols=32, chip_options={"nominal": model})
    with load_station().with_simulation(bench="drolet-pulse", seed=1, kind="passive", rows=32, cols=32).connect() as st:
        chip = st.bench.chip
        truth = chip.reveal_truth()
        tr, res = ha.transfer_pulse_level(w, st.crossbar, model, "V/3",
                                          truth=lambda: (chip._g, truth.a, truth.r_wire_row, truth.r_wire_col))
    assert np.array_equal(np.isfinite(tr.targets), res.mask) and res.mask.sum() == 84
    assert res.summary()["converged_fraction"] > 0.7  # the others sit at a window edge
    pulse_acc = np.mean(np.argmax(ha.array_forward(tr, task.X_test, scales), axis=1) == task.y_test)
    fast = [np.mean(np.argmax(ha.array_forward(ha.transfer(w, model, np.random.default_rng(k), "V/3"), task.X_test, scales), axis=1) == task.y_test)
            for k in range(5)]
    assert pulse_acc > 0.9 and pulse_acc > np.mean(fast) - 0.05
