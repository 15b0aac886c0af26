"""Property: whatever pulses, protocol settings, targets and station limits a user hands in, no
pulse beyond the limits reaches the chip (the simulated chip's pulse log is the witness).

Checked per pulse: amplitude, gate, width and worst-case energy (``|V| * max_current * width``);
per device and run: the pulse count and the cumulative energy budgets.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.crossbar import Crossbar
from labrram.drivers.base import InstrumentError
from labrram.drivers.board import CrossbarBoard
from labrram.protocols.results import TargetError
from labrram.protocols.single_shot import OneShotSettings, single_shot, stochastic_set
from labrram.protocols.write_verify import ReRAMWriteVerify, reachable_range, write_verify_reram
from labrram.reliability import die_pulses
from labrram.safety import LimitError, SafeLimits

MODEL = default_calibration("reram").model
SHAPE = (4, 4)
FAST = settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
FAST_PROTOCOLS = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=4000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def log_uniform(lo: float, hi: float):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


@st.composite
def limits(draw) -> SafeLimits:
    """Station limits, mostly around what the protocols use, sometimes very tight."""
    max_w = draw(log_uniform(2e-7, 1e-2))
    max_energy = draw(log_uniform(1e-10, 1e-5))
    return SafeLimits(
        max_voltage=draw(st.floats(1.0, 5.0)),
        max_gate_voltage=draw(st.floats(1.5, 5.5)),
        max_current=draw(log_uniform(1e-5, 1e-2)),
        max_pulse_width=max_w,
        min_pulse_width=min(draw(log_uniform(5e-9, 2e-7)), max_w),
        max_energy=max_energy,
        max_pulses_per_device=draw(st.integers(1, 40)),
        max_energy_per_device=max_energy * draw(st.floats(1.0, 60.0)),
    )


def around(rng: np.random.Generator, limit: float, n: int, lo: float = 0.0) -> np.ndarray:
    """Values on either side of a limit (a quarter beyond it), one in 30 not finite or absurd."""
    v = rng.uniform(lo, 1.25 * limit, n)
    odd = rng.random(n) < 1 / 30
    v[odd] = rng.choice([np.nan, np.inf, -np.inf, -1.0, 1e30], odd.sum())
    return v


#: values travel to the board as float32: a value requested exactly at a limit reaches the die
#: within one float32 rounding of it (1 part in 1.7e7)
F32 = 1 + 2**-23


def assert_within(records: np.ndarray, lim: SafeLimits) -> None:
    """The pulse-log records of one connection / one run obey every limit."""
    p = die_pulses(records)
    if p.size == 0:
        return
    amplitude, gate, width = p["amplitude"].astype(float), p["gate"].astype(float), p["width"].astype(float)
    assert np.all(np.abs(amplitude) <= lim.max_voltage * F32)
    assert np.all((gate >= 0) & (gate <= lim.max_gate_voltage * F32))
    assert np.all((width >= lim.min_pulse_width / F32) & (width <= lim.max_pulse_width * F32))
    energy = lim.pulse_energy(amplitude, width)
    assert np.all(energy <= lim.max_energy * F32**2)
    count, total = np.zeros(SHAPE), np.zeros(SHAPE)
    np.add.at(count, (p["row"], p["col"]), 1)
    np.add.at(total, (p["row"], p["col"]), energy)
    assert count.max() <= lim.max_pulses_per_device
    assert total.max() <= lim.max_energy_per_device * F32**2 * (1 + 1e-12)


@pytest.fixture(scope="module")
def bench():
    return sim.configure_bench("prop", seed=11, rows=SHAPE[0], cols=SHAPE[1])


# --- the driver: any batch of pulses -------------------------------------------------------------
@st.composite
def driver_case(draw, max_batches: int = 6):
    """Limits, then batches of pulses drawn around them (values from a numpy generator seeded
    by hypothesis: thousands of values per example at no drawing cost)."""
    lim = draw(limits())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batches = []
    for _ in range(draw(st.integers(1, max_batches))):
        n = int(rng.integers(1, 13))
        cells = np.column_stack([rng.integers(0, SHAPE[0], n), rng.integers(0, SHAPE[1], n)])
        m = n if rng.random() < 0.5 else 1

        def values(limit, lo=0.0):
            v = around(rng, limit, m, lo)
            return v if m > 1 else float(v[0])

        width = values(1.1 * lim.max_pulse_width, 0.5 * lim.min_pulse_width)
        kind = "SET" if rng.random() < 0.5 else "RESET"
        batches.append((kind, cells, values(lim.max_voltage), values(lim.max_gate_voltage), width, bool(rng.random() < 0.5)))
    return lim, batches


def _driver_case(bench, lim: SafeLimits, batches) -> None:
    n0 = len(bench.chip.pulse_log)
    board = CrossbarBoard.open("labrram://prop/board", limits=lim)
    try:
        for kind, cells, amplitude, gate, width, read in batches:
            rows, cols = np.asarray(cells).T
            try:
                board.pulse(kind, rows, cols, amplitude, gate, width, read=read)
            except (LimitError, ValueError):
                pass  # refused before any byte
            except InstrumentError:
                pass  # refused by the board (its own hardware range), nothing pulsed
    finally:
        board.close()
    assert_within(bench.chip.pulse_log.records[n0:], lim)


@FAST
@given(case=driver_case())
def test_no_board_pulse_beyond_the_limits(bench, case):
    _driver_case(bench, *case)


@pytest.mark.slow
@SLOW
@given(case=driver_case(max_batches=10))
def test_no_board_pulse_beyond_the_limits_many(bench, case):
    _driver_case(bench, *case)


# --- the protocols: any settings, any targets ------------------------------------------------------
@st.composite
def protocol_case(draw):
    """Protocol settings and targets: two times in three within the limits (the run goes on, and
    the budgets and the gate steps are what must hold the line), else around them."""
    lim = draw(limits())
    protocol = draw(st.sampled_from(["write-verify", "single-shot", "stochastic-set"]))
    inside = draw(st.integers(0, 2)) > 0
    k = 0.999 if inside else 1.15
    gate_min = draw(st.floats(1.0, 2.2))

    def pulse():
        amplitude = draw(st.floats(0.8, k * max(lim.max_voltage, 0.81)))
        w_energy = lim.max_energy / (amplitude * lim.max_current)
        w_hi = k * min(lim.max_pulse_width, w_energy) if inside else 1.2 * lim.max_pulse_width
        w_lo = lim.min_pulse_width if inside else 0.5 * lim.min_pulse_width
        return amplitude, draw(log_uniform(w_lo, max(w_hi, w_lo)))

    set_amplitude, set_width = pulse()
    reset_amplitude, reset_width = pulse()
    common = dict(
        gate_min=gate_min,
        gate_max=min(gate_min + draw(st.floats(0.1, 1.5)), k * lim.max_gate_voltage),
        set_amplitude=set_amplitude,
        set_width=set_width,
        reset_amplitude=reset_amplitude,
        reset_gate=draw(st.floats(1.0, k * lim.max_gate_voltage)),
        reset_width=reset_width,
    )
    if protocol == "write-verify":
        extra = dict(max_iterations=draw(st.integers(1, 25)), tolerance=draw(st.floats(0.01, 0.3)), give_up=draw(st.integers(1, 8)))
    else:
        extra = dict(chunk=draw(st.integers(1, 20)))
    lo, hi = sorted(reachable_range(MODEL, common["gate_min"], max(common["gate_max"], common["gate_min"] + 0.01)))
    g = st.one_of(st.floats(lo, hi), st.just(np.nan)) if inside else st.one_of(st.floats(lo, hi), st.just(np.nan), st.floats(0.0, 500e-6))
    targets = np.array(draw(st.lists(g, min_size=16, max_size=16))).reshape(SHAPE)
    return lim, (protocol, {**common, **extra}, targets)


def _protocol_case(bench, lim: SafeLimits, case) -> None:
    protocol, options, targets = case
    n0 = len(bench.chip.pulse_log)
    try:
        s = ReRAMWriteVerify(**options) if protocol == "write-verify" else OneShotSettings(**options)
    except ValueError:
        return  # settings refused on their own
    board = CrossbarBoard.open("labrram://prop/board", limits=lim)
    try:
        xb = Crossbar(board, None, lim, read_voltage=min(0.2, lim.max_voltage), read_gate=min(3.3, lim.max_gate_voltage))
        if protocol == "write-verify":
            write_verify_reram(xb, targets, MODEL, s)
        elif protocol == "single-shot":
            single_shot(xb, targets, MODEL, s)
        else:
            stochastic_set(xb, targets, np.full(SHAPE, 10e-6), MODEL, s)
    except (LimitError, TargetError):
        pass  # refused before anything was sent
    finally:
        board.close()
    assert_within(bench.chip.pulse_log.records[n0:], lim)


@FAST_PROTOCOLS
@given(case=protocol_case())
def test_no_protocol_pulse_beyond_the_limits(bench, case):
    _protocol_case(bench, *case)


@pytest.mark.slow
@SLOW
@given(case=protocol_case())
def test_no_protocol_pulse_beyond_the_limits_many(bench, case):
    _protocol_case(bench, *case)


def test_a_protocol_gives_up_on_a_device_at_its_budget(bench):
    """With room for 5 pulses per device, write-verify stops pulsing a device at 5."""
    lim = SafeLimits(max_pulses_per_device=5)
    n0 = len(bench.chip.pulse_log)
    with CrossbarBoard.open("labrram://prop/board", limits=lim) as board:
        xb = Crossbar(board, None, lim)
        res = write_verify_reram(xb, np.full(SHAPE, 150e-6), MODEL, ReRAMWriteVerify(tolerance=0.01, abs_tolerance=1e-9, guard=0.0))
    p = die_pulses(bench.chip.pulse_log.records[n0:])
    count = np.zeros(SHAPE)
    np.add.at(count, (p["row"], p["col"]), 1)
    assert count.max() == 5 and res.pulses.max() <= 5
    assert_within(bench.chip.pulse_log.records[n0:], lim)


def test_a_second_job_on_the_same_connection_gives_up_on_devices_the_first_one_wore_out(bench):
    """The budget is the connection's, across jobs: a device the first run took to its budget is
    given up on by the second (the batch goes on without it) instead of the board refusing the
    whole batch, and no device goes beyond the budget on the die."""
    lim = SafeLimits(max_pulses_per_device=5)
    n0 = len(bench.chip.pulse_log)
    hard = ReRAMWriteVerify(tolerance=0.01, abs_tolerance=1e-9, guard=0.0)
    with CrossbarBoard.open("labrram://prop/board", limits=lim) as board:
        xb = Crossbar(board, None, lim)
        first = write_verify_reram(xb, np.full(SHAPE, 150e-6), MODEL, hard)
        second = write_verify_reram(xb, np.full(SHAPE, 60e-6), MODEL, hard)
    worn = first.pulses >= 5
    assert worn.any() and np.all(second.pulses[worn] == 0) and not second.converged[worn].any()
    p = die_pulses(bench.chip.pulse_log.records[n0:])
    count = np.zeros(SHAPE)
    np.add.at(count, (p["row"], p["col"]), 1)
    assert count.max() == 5
    np.testing.assert_array_equal(count, first.pulses + second.pulses)


def test_settings_beyond_the_limits_are_refused_before_any_byte(bench):
    lim = SafeLimits(max_voltage=2.0)
    inst = bench.instruments["board"]
    with CrossbarBoard.open("labrram://prop/board", limits=lim) as board:
        xb = Crossbar(board, None, lim)
        before = inst.received
        with pytest.raises(LimitError, match="write-verify RESET: pulse amplitude 2.6 V exceeds the bench limit of 2 V"):
            write_verify_reram(xb, np.full(SHAPE, 100e-6), MODEL)
        assert inst.received == before  # not even the array size was asked


def test_each_pulse_energy_is_judged_on_its_own_amplitude_and_width():
    """The highest amplitude and the longest width may belong to different pulses: their product
    bounds every energy but is not one, so such a batch passes; one pulse beyond is refused."""
    lim = SafeLimits(max_current=1e-3, max_energy=1e-9, max_pulse_width=1e-3)
    lim.check_pulse([3.0, 0.1], [1.0, 1.0], [1e-7, 5e-6], current_limit=lim.max_current)  # 3e-10 J and 5e-10 J
    with pytest.raises(LimitError, match="energy 1.5e-09 J"):
        lim.check_pulse([3.0, 0.1], [1.0, 1.0], [5e-7, 5e-6], current_limit=lim.max_current)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(LimitError, match="pulse amplitude must be finite"):
            lim.check_pulse([0.5, bad, 0.5], [1.0] * 3, [1e-6] * 3)
        with pytest.raises(LimitError, match="pulse width must be finite"):
            lim.check_pulse([0.5] * 3, [1.0] * 3, [1e-6, 1e-6, bad])
    with pytest.raises(LimitError, match="pulse amplitude 3.5 V exceeds"):
        lim.check_pulse([-3.5, 0.5], [1.0, 1.0], [1e-6, 1e-6])
    lim.check_pulse(np.empty(0), np.empty(0), np.empty(0), current_limit=lim.max_current)  # nothing to check
    for amplitude, width in (([0.5] * 4, [1e-6] * 3), ([], [1e-6] * 3)):  # levels that do not pair up
        with pytest.raises(ValueError, match="do not go together"):
            lim.check_pulse(amplitude, 1.0, width, current_limit=lim.max_current)
