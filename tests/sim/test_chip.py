import numpy as np
import pytest

from labrram.sim import PulseKind, ReRAMChip


def test_seeded_and_reproducible():
    a, b, c = ReRAMChip(16, 16, seed=3), ReRAMChip(16, 16, seed=3), ReRAMChip(16, 16, seed=4)
    rr, cc = np.indices((16, 16))
    np.testing.assert_array_equal(a._conductance(rr, cc), b._conductance(rr, cc))
    assert a.reveal_truth() == b.reveal_truth() != c.reveal_truth()


def test_set_follows_compliance_and_reset_returns_to_hrs():
    chip = ReRAMChip(32, 32, seed=1)
    truth = chip.reveal_truth()
    ok = np.argwhere(chip._stuck == 0)[:256]
    rows, cols = ok[:, 0], ok[:, 1]
    chip.pulse_set(rows, cols, 1.8, 1.8, 1e-6)
    g = chip._conductance(rows, cols)
    expected = truth.median(truth.transistor.compliance(1.8))
    assert abs(np.median(g) / expected - 1) < 0.05
    chip.pulse_reset(rows, cols, 2.6, 4.8, 100e-9)
    assert np.median(chip._conductance(rows, cols)) < 10e-6
    log = chip.pulse_log.records
    assert len(log) == 512
    assert set(log["kind"]) == {PulseKind.SET, PulseKind.RESET}


def test_subthreshold_pulse_does_not_switch():
    chip = ReRAMChip(8, 8, seed=2)
    before = chip._g.copy()
    chip.pulse_set(np.arange(8), np.arange(8), 1.0, 2.2, 1e-6)  # below v_set
    np.testing.assert_array_equal(chip._g, before)
    assert len(chip.pulse_log) == 8  # still logged: it reached the die


def test_read_noise_is_about_one_percent():
    chip = ReRAMChip(4, 4, seed=0)
    chip.pulse_set(np.array([1]), np.array([1]), 1.8, 2.0, 1e-6)
    i = np.array([chip.read(np.array([1]), np.array([1]), 0.2, 3.3)[0] for _ in range(2000)])
    rel = np.std(i) / np.mean(i)
    assert 0.005 < rel < 0.02


def test_breakdown_makes_a_stuck_device():
    chip = ReRAMChip(4, 4, seed=0)
    chip.pulse_set(np.array([0]), np.array([0]), 5.5, 2.0, 1e-6)
    assert chip._stuck[0, 0] == 1


def test_out_of_array_address_raises():
    chip = ReRAMChip(4, 4, seed=0)
    with pytest.raises(IndexError):
        chip.read(np.array([4]), np.array([0]), 0.2, 3.3)


def test_mvm_is_conductance_weighted_sum():
    chip = ReRAMChip(16, 8, seed=0)
    rr, cc = np.indices((16, 8))
    g = chip._conductance(rr, cc)
    v = np.linspace(0.05, 0.2, 16)
    i = chip.mvm(v, 3.3)
    np.testing.assert_allclose(i, v @ g, rtol=0.02)
