"""The aimed SET: the median that costs the fewest pulses, checked against draws, and the
write-verify that uses it against gate-stepping ISPP on the same chip."""

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.protocols import set_policy
from labrram.protocols.engine import simulate
from labrram.protocols.messages import Pulse, PulseResult, Read
from labrram.protocols.plan import model_to_json
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM, reachable_range

MODEL = default_calibration("reram").model


def draws_to_land(offset: float, r: float, trials: int, rng) -> float:
    """Pulses (SETs, plus a RESET after each overshoot) until a draw of N(offset, 1) kept only
    when above the present state lands in [0, r]: the physics the policy is built on."""
    total = 0
    for _ in range(trials):
        g = -8.0  # RESET level, far below
        while True:
            y = rng.normal(offset, 1.0)
            total += 1
            if y > r:
                total += 1
                g = -8.0
            elif y >= 0.0:
                break
            else:
                g = max(g, y)
    return total / trials


@pytest.mark.parametrize("r", [0.5, 1.0, 2.7])
def test_the_tabulated_cost_is_what_draws_cost_and_no_other_offset_is_cheaper(r):
    rng = np.random.default_rng(1)
    best = float(set_policy.best_offset(np.array([r]))[0])
    cost = float(set_policy.expected_pulses(np.array([r]))[0])
    measured = draws_to_land(best, r, 4000, rng)
    assert measured == pytest.approx(cost, rel=0.06)
    for other in (best - 0.6, best + 0.6):
        assert draws_to_land(other, r, 4000, rng) > measured


def test_cost_falls_as_the_band_widens_and_the_aim_moves_up_in_it():
    r = np.array([0.1, 0.3, 1.0, 3.0, 10.0])
    cost, off = set_policy.expected_pulses(r), set_policy.best_offset(r)
    assert np.all(np.diff(cost) < 0) and cost[-1] == pytest.approx(1.0, abs=0.01)
    assert np.all(np.diff(off) > 0) and off[0] < 0  # a narrow band: aim below it


def bare(plan, chip):
    def answer(msg):
        if isinstance(msg, Pulse):
            (chip.pulse_set if msg.kind == "SET" else chip.pulse_reset)(msg.rows, msg.cols, msg.amplitude, msg.gate, msg.width)
            return PulseResult(chip.read(msg.rows, msg.cols, 0.2, 3.3) / 0.2, np.ones(msg.n, np.int8))
        assert isinstance(msg, Read)
        return chip.read(msg.rows, msg.cols, 0.2, 3.3) / 0.2

    return simulate(plan, (chip.rows, chip.cols), answer)


def test_aimed_write_verify_lands_in_truth_with_fewer_pulses_than_ispp_over_the_whole_range():
    lo, hi = reachable_range(MODEL, 1.2, 2.4)
    targets = np.exp(np.random.default_rng(3).uniform(np.log(1.05 * lo), np.log(0.95 * hi), (40, 40)))
    out = {}
    for policy in ("aim", "ispp"):
        chip = sim.ReRAMChip(40, 40, seed=8)
        res = bare(WriteVerifyReRAM(targets, MODEL, ReRAMWriteVerify(policy=policy)), chip)
        healthy = chip._stuck == 0
        truth = chip._conductance(*np.indices((40, 40)))  # judged on the chip's true conductance
        band = np.maximum(0.05 * targets, 1e-6)
        out[policy] = (np.mean(np.abs(truth - targets)[healthy] <= band[healthy]), res.pulses[healthy].mean(), res, healthy)
    within, pulses, res, healthy = out["aim"]
    assert within >= 0.995
    assert pulses < 0.75 * out["ispp"][1]
    high = healthy & (targets > 80e-6)  # where the spread is small, a few pulses
    assert res.pulses[high].mean() < 4


def test_a_run_stored_before_the_policy_existed_resumes_as_the_gate_stepping_it_was():
    class Store:
        def read(self, name):
            return np.full((2, 2), 50e-6)

    old = {k: v for k, v in ReRAMWriteVerify().to_dict().items() if k not in ("policy", "rereads")}
    plan = WriteVerifyReRAM.from_store({"settings": {**old, "guard": 2.0}, "calibration": model_to_json(MODEL)}, Store())
    assert plan.settings.policy == "ispp"


def test_a_batch_bigger_than_a_step_goes_in_steps_and_comes_back_whole():
    from labrram.protocols.messages import in_steps

    msg = Pulse("SET", np.arange(10) % 4, np.arange(10) // 4, 1.8, np.linspace(1.2, 2.0, 10), 1e-6)
    gen = in_steps(msg, size=4)
    sizes, reply = [], None
    try:
        while True:
            sub = gen.send(reply)
            sizes.append(sub.n)
            reply = PulseResult(sub.gate * 1e-5, np.ones(sub.n, np.int8))
    except StopIteration as stop:
        joined = stop.value
    assert sizes == [4, 4, 2]
    np.testing.assert_allclose(joined.g, msg.gate * 1e-5)
    assert joined.status.size == 10
