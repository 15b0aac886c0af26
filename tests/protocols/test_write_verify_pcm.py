"""PCM write-verify with the SET/RESET voltage ladders (Bonnet Alg. 2) on the simulated PCM chip."""

import numpy as np
import pytest

from labrram import sim
from labrram.protocols.journal import read_log
from labrram.store import RunStore
from labrram.protocols.write_verify_pcm import PCMWriteVerify, write_verify_pcm
from labrram.sim import PulseKind
from labrram.station import load_station


@pytest.fixture
def station():
    sim.configure_bench("pcmwv", seed=1, kind="pcm", rows=32, cols=32)
    with load_station().with_simulation(bench="pcmwv", seed=1, kind="pcm", rows=32, cols=32).connect() as st:
        yield st


def test_ladder_converges_within_joshis_band(station, tmp_path):
    targets = np.random.default_rng(0).uniform(2e-6, 22e-6, (32, 32))
    res = write_verify_pcm(station.crossbar, targets, PCMWriteVerify(half_width=1.0e-6), out=tmp_path / "p.zarr")
    chip = station.bench.chip
    healthy = chip._stuck == 0
    assert res.converged[healthy].mean() >= 0.99
    err = chip._conductance(*np.nonzero(healthy & res.converged)) - targets[healthy & res.converged]
    assert np.std(err) < 1.2e-6  # Joshi 2020: sigma < 1.2 uS on all levels
    log = chip.pulse_log.records
    sets = log[log["kind"] == PulseKind.SET]
    assert sets["amplitude"].max() <= 1.8 + 1e-6 and log["amplitude"].max() <= 2.9 + 1e-6
    assert read_log(RunStore.open(tmp_path / "p.zarr"))["row"].size == len(log) == res.pulses.sum()


def test_ladder_bounds_are_validated():
    with pytest.raises(ValueError):
        PCMWriteVerify(v_set_max=2.8, v_reset_min=2.7)
    for bad in (0, 65, 2.5, True, "4"):
        with pytest.raises(ValueError, match="reads"):
            PCMWriteVerify(reads=bad)
    for bad in (0, 9, 1.5, True, "2"):
        with pytest.raises(ValueError, match="attempts"):
            PCMWriteVerify(attempts=bad)


def test_averaged_verify_reads_program_closer_to_target_in_truth():
    """A tight band (0.3 µS near 8 µS, as Bayes2IMC) on one read accepts devices that the 1/f
    noise of that read put in band; averaging 8 reads in a row lands them closer (judged on
    the chip's true conductance). Same chip, same targets, 4,096 devices."""
    errors = {}
    for reads in (1, 8):
        sim.configure_bench("pcmreads", seed=4, kind="pcm", rows=64, cols=64)
        with load_station().with_simulation(bench="pcmreads", seed=4, kind="pcm", rows=64, cols=64).connect() as st:
            targets = np.random.default_rng(1).uniform(6e-6, 10e-6, (64, 64))
            res = write_verify_pcm(st.crossbar, targets, PCMWriteVerify(half_width=0.3e-6, max_iterations=200, reads=reads))
            chip = st.bench.chip
            ok = res.converged & (chip._stuck == 0)
            assert ok.mean() > 0.9
            errors[reads] = np.std(chip._conductance(*np.nonzero(ok)) - targets[ok])
            assert res.settings["reads"] == reads
    assert errors[8] < 0.9 * errors[1]



def _drive(targets, bias, settings=None, budget=None):
    """Run :class:`WriteVerifyPCM` on an ideal toy PCM array (RESET -> 0.5 uS, each SET +1 uS,
    reads exact, the device's k-th read off by ``bias.get((device, k), 0)``; with ``budget``, a
    device's pulses past that many are refused); returns the result and the messages sent. A 5 uS target is accepted at 4.5 uS on its 5th read, so the 6th is
    the final read."""
    from labrram.protocols.messages import Pulse, PulseResult, Read
    from labrram.protocols.write_verify_pcm import WriteVerifyPCM

    g = np.zeros(targets.size)
    reads = np.zeros(targets.size, int)
    pulses = np.zeros(targets.size, int)
    sent, reply = [], None
    gen = WriteVerifyPCM(targets, settings or PCMWriteVerify()).run(targets.shape)
    while True:
        try:
            msg = gen.send(reply)
        except StopIteration as stop:
            return stop.value, sent
        sent.append(msg)
        dev = np.ravel_multi_index((msg.rows, msg.cols), targets.shape) if hasattr(msg, "rows") else None
        if isinstance(msg, Pulse):
            ok = np.ones(msg.n, bool) if budget is None else pulses[dev] < budget  # refused: the device's budget is spent
            pulses[dev[ok]] += 1
            g[dev[ok]] = 0.5e-6 if msg.kind == "RESET" else g[dev[ok]] + 1e-6
            reply = PulseResult(np.full(msg.n, np.nan), np.where(ok, 1, -2).astype(np.int8))
        elif isinstance(msg, Read):
            reads[dev] += 1
            reply = g[dev] + np.array([bias.get((d, k), 0.0) for d, k in zip(dev, reads[dev])])
        else:
            reply = None


def test_a_final_read_far_above_target_gets_a_touch_up():
    """Drift only lowers a PCM device: a final read 2.5 bands above target is programmed again
    and then judged on a last read; the same distance below (drift) is left alone."""
    from labrram.protocols.messages import Pulse

    targets = np.array([[5.0e-6, 5.0e-6]])
    res, sent = _drive(targets, {(0, 6): 3.0e-6, (1, 6): -2.0e-6})
    assert res.converged.all()
    after_final = sent[[i for i, m in enumerate(sent) if getattr(m, "n", 0) == 2][-1] + 1 :]  # what follows the final read
    assert after_final and all(list(m.cols) == [0] for m in after_final if hasattr(m, "cols"))
    assert any(isinstance(m, Pulse) and m.kind == "RESET" for m in after_final)
    assert res.pulses[0, 0] == 2 * res.pulses[0, 1]  # the whole ladder again: RESET and four SETs
    assert res.achieved[0, 0] == pytest.approx(4.5e-6) and res.achieved[0, 1] == pytest.approx(2.5e-6)


def test_still_far_above_after_the_touch_up_is_not_converged():
    targets = np.array([[5.0e-6, 5.0e-6]])
    res, _ = _drive(targets, {(0, 6): 3.0e-6, (0, 12): 3.0e-6})
    assert not res.converged[0, 0] and res.converged[0, 1]
    res, _ = _drive(targets, {(0, 6): 2.4e-6})  # 1.9 uS above the target: within two bands: no touch-up
    assert res.converged.all() and res.pulses[0, 0] == res.pulses[0, 1]


def test_a_second_attempt_starts_the_ladders_again_for_the_devices_left_out():
    """Device 0's first five reads are thrown high (RESET after RESET until the ladder's five
    iterations run out); a second attempt gives it, and only it, a fresh RESET and the SET
    ladder, which brings it in. Device 1, accepted in the first attempt, is not touched again."""
    from labrram.protocols.messages import Pulse

    targets = np.array([[5.0e-6, 5.0e-6]])
    high = {(0, k): 10e-6 for k in range(1, 6)}
    one, _ = _drive(targets, high, PCMWriteVerify(max_iterations=5))
    assert not one.converged[0, 0] and one.converged[0, 1]
    two, sent = _drive(targets, high, PCMWriteVerify(max_iterations=5, attempts=2))
    assert two.converged.all()
    assert two.pulses[0, 1] == one.pulses[0, 1] == 5  # RESET and four SETs, once
    assert two.pulses[0, 0] == one.pulses[0, 0] + 5 == 11  # 1 + 5 RESETs, then RESET and four SETs
    assert two.achieved[0, 0] == pytest.approx(4.5e-6)
    first_set = next(i for i, m in enumerate(sent) if isinstance(m, Pulse) and m.kind == "SET" and 0 in list(m.cols))
    assert np.all(sent[first_set].amplitude == PCMWriteVerify().v_set0)  # the SET ladder from its first step
    fresh = sent[first_set - 2]  # the second attempt's RESET, then its first verify read, then that SET
    assert isinstance(fresh, Pulse) and fresh.kind == "RESET" and np.all(fresh.amplitude == PCMWriteVerify().v_reset0)
    assert all(list(m.cols) == [0] for m in sent[first_set - 2 :] if hasattr(m, "cols"))
    assert two.settings["attempts"] == 2 and two.iterations > one.iterations


def test_a_second_attempt_brings_in_devices_the_read_noise_threw_out_of_a_tight_band():
    """0.3 µS band near 8 µS (Bayes2IMC's): the 1/f noise of one read is as large as the band,
    and some devices end their ladders out of it. Same chip and targets: the first attempt is
    the same in both runs; the second brings in most of those left out; what no attempt brings
    in includes every stuck device."""
    out = {}
    for attempts in (1, 2):
        sim.configure_bench("pcmtries", seed=4, kind="pcm", rows=64, cols=64)
        with load_station().with_simulation(bench="pcmtries", seed=4, kind="pcm", rows=64, cols=64).connect() as st:
            targets = np.random.default_rng(1).uniform(6e-6, 10e-6, (64, 64))
            out[attempts] = write_verify_pcm(st.crossbar, targets, PCMWriteVerify(half_width=0.3e-6, max_iterations=200, attempts=attempts))
            stuck = st.bench.chip._stuck != 0
    one, two = out[1], out[2]
    left = ~one.converged
    assert left.sum() >= 10
    assert np.array_equal(one.pulses[~left], two.pulses[~left]) and np.array_equal(one.achieved[~left], two.achieved[~left])
    assert (two.pulses[left] > one.pulses[left]).all()
    assert (two.converged[left & ~stuck]).mean() > 0.5
    assert not two.converged[stuck].any()


def test_a_device_whose_pulse_was_refused_keeps_its_last_read_and_gets_no_further_attempt():
    """Device 0 spends its budget of 6 pulses in the first attempt (RESET and five RESETs on
    reads thrown high): the second attempt's fresh RESET is refused, so the device is never read
    again — its last read stays the first attempt's — and a third attempt leaves it alone."""
    from labrram.protocols.messages import Pulse

    targets = np.array([[5.0e-6, 5.0e-6]])
    high = {(0, k): 10e-6 for k in range(1, 6)}
    one, _ = _drive(targets, high, PCMWriteVerify(max_iterations=5), budget=6)
    res, sent = _drive(targets, high, PCMWriteVerify(max_iterations=5, attempts=3), budget=6)
    assert not res.converged[0, 0] and res.converged[0, 1]
    assert res.achieved[0, 0] == one.achieved[0, 0] == pytest.approx(10.5e-6)
    assert res.pulses[0, 0] == 6 and res.pulses[0, 1] == one.pulses[0, 1]
    to_device_0 = [m for m in sent if isinstance(m, Pulse) and 0 in list(m.cols)]
    assert len(to_device_0) == 7  # six delivered, then the second attempt's RESET, refused; no third
    assert np.isfinite(res.summary()["rms_error"])
