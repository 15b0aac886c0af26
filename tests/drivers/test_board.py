"""Board driver: exact bytes of the batched commands, limits, and the bench."""

import numpy as np
import pytest

from labrram.board_records import PULSE_RECORD
from labrram.drivers.board import CrossbarBoard
from labrram.ieee488 import encode_block
from labrram.safety import LimitError, SafeLimits


@pytest.fixture
def board(fake_transport):
    b = CrossbarBoard(fake_transport, limits=SafeLimits())
    b._shape = (4, 4)
    return b


def test_pulse_list_is_one_binary_block(board, fake_transport):
    """A batch without a reply: the counter (tagged with the board's boot count; read twice, as
    the driver has no count of its own yet) before it, the block, the error queue, and the
    counter again (once: it is the count the driver expects) — a command lost on the way is not
    taken for delivered."""
    fake_transport.replies += [b"1\n", b"40\n", b"40\n", b"1\n", b'+0,"No error"\n', b"1\n", b"42\n", b"1\n"]
    board._configured = True
    board.pulse("SET", [0, 3], [1, 2], 1.8, [1.5, 2.0], 1e-6)
    rec = np.zeros(2, dtype=PULSE_RECORD)
    rec["row"], rec["col"], rec["amplitude"], rec["gate"], rec["width"] = [0, 3], [1, 2], 1.8, [1.5, 2.0], 1e-6
    assert fake_transport.written == [b":SYST:BOOT?\n", b":SYST:PULS?\n", b":SYST:PULS?\n", b":SYST:BOOT?\n",
                                      b":PULS:LIST SET," + encode_block(rec.tobytes()) + b"\n",
                                      b":SYST:ERR?\n", b":SYST:BOOT?\n", b":SYST:PULS?\n", b":SYST:BOOT?\n"]  # fmt: skip
    assert board.pulse_counter() == board.BOOT_STRIDE + 42


def test_a_write_only_batch_lost_on_the_way_is_not_delivered(board, fake_transport):
    from labrram.drivers.board import NOT_DELIVERED, PulseDeliveryError

    # a count that is not the expected one is confirmed by a second read
    fake_transport.replies += [b"1\n", b"40\n", b"40\n", b"1\n", b'+0,"No error"\n', b"1\n", b"40\n", b"40\n", b"1\n", b"1\n", b"40\n", b"40\n", b"1\n"]
    board._configured = True
    with pytest.raises(PulseDeliveryError) as info:
        board.pulse("SET", [0, 3], [1, 2], 1.8, 1.5, 1e-6)
    assert list(info.value.status) == [NOT_DELIVERED, NOT_DELIVERED]


@pytest.mark.parametrize(
    "after, verdict",
    [
        # the true count 2434 with digits dropped reads 2: below the 2432 read before, re-read
        ([b"1\n", b"2\n", b"2434\n", b"1\n"], "DELIVERED"),
        # replaced digits that a second read does not repeat: re-read
        ([b"1\n", b"2932\n", b"2434\n", b"2434\n", b"1\n"], "DELIVERED"),
        # the batch never arrived: the same count, twice
        ([b"1\n", b"2432\n", b"2432\n", b"1\n"], "NOT_DELIVERED"),
    ],
)
def test_a_corrupted_pulse_count_never_settles_a_delivered_batch_as_not_delivered(board, fake_transport, after, verdict):
    """A count is a bare number: a reply with a digit dropped or replaced still parses. A count
    below one read earlier on the same boot, or one that a second read does not repeat, is read
    again before it settles a batch."""
    import labrram.drivers.board as board_module

    fake_transport.replies += [b"1\n", b"2432\n", b"2432\n", b"1\n"]
    before = board.pulse_counter()
    board._counter = None  # as after a failed exchange
    fake_transport.replies += after
    assert board.delivery(before, 2) == getattr(board_module, verdict)
    assert not fake_transport.replies  # every reply consumed: no read more or fewer than said


def test_pulse_read_returns_currents(board, fake_transport):
    board._configured = True
    fake_transport.replies.append(np.array([1e-5, 2e-5], dtype="<f4").tobytes())
    i = board.pulse("RESET", [1, 2], [1, 2], 2.6, 4.8, 1e-7, read=True)
    np.testing.assert_allclose(i, [1e-5, 2e-5], rtol=1e-6)
    assert fake_transport.written[0].startswith(b":PULS:READ:LIST? RESET,#")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(amplitude=3.5, gate=2.0, width=1e-6),  # beyond max_voltage
        dict(amplitude=1.8, gate=6.0, width=1e-6),  # gate beyond max_gate_voltage
        dict(amplitude=1.8, gate=2.0, width=1.0),  # too long
        dict(amplitude=1.8, gate=2.0, width=1e-12),  # too short
        dict(amplitude=float("inf"), gate=2.0, width=1e-6),
    ],
)
def test_pulse_limits_refuse_before_any_byte(board, fake_transport, mocker, kwargs):
    spy = mocker.spy(fake_transport, "write")
    with pytest.raises(LimitError):
        board.pulse("SET", [0], [0], **kwargs)
    spy.assert_not_called()


def test_bad_cells_refused(board, fake_transport):
    with pytest.raises(ValueError, match="outside"):
        board.pulse("SET", [4], [0], 1.8, 2.0, 1e-6)
    with pytest.raises(ValueError, match="kind"):
        board.pulse("FORM", [0], [0], 1.8, 2.0, 1e-6)
    assert fake_transport.written == []


def test_read_row_length_is_checked(board, fake_transport):
    board._configured = True
    fake_transport.replies.append(np.zeros(3, dtype="<f4").tobytes())
    with pytest.raises(Exception, match="expected 4"):
        board.measure_row(0)


def test_whole_array_read_matches_the_chip(bench):
    with CrossbarBoard.open("labrram://default/board") as board:
        t0 = bench.clock.now
        i = board.measure_all()
        dt = bench.clock.now - t0
        rr, cc = np.indices(i.shape)
        g = bench.chip._conductance(rr, cc)
        np.testing.assert_allclose(i / 0.2, g, rtol=0.06)
        assert dt < 0.1  # one transaction: 64 kB over USB + 128 row conversions


def test_set_and_reset_move_conductance_on_the_bench(bench):
    with CrossbarBoard.open("labrram://default/board") as board:
        ok = np.argwhere(bench.chip._stuck == 0)[:64]
        rows, cols = ok[:, 0], ok[:, 1]
        before = board.measure_cells(rows, cols)
        after_set = board.pulse("SET", rows, cols, 1.8, 2.0, 1e-6, read=True)
        assert np.median(after_set) > 20 * np.median(before)
        after_reset = board.pulse("RESET", rows, cols, 2.6, 4.8, 1e-7, read=True)
        assert np.median(after_reset) < np.median(after_set) / 20
        assert len(bench.chip.pulse_log) == 128


def test_mvm_matches_the_weighted_sum(bench):
    with CrossbarBoard.open("labrram://default/board") as board:
        g = bench.chip._conductance(*np.indices((128, 128)))
        v = np.random.default_rng(0).uniform(0, 0.2, 128)
        np.testing.assert_allclose(board.mvm(v), v @ g, rtol=0.03)  # a few stuck-LRS cells dominate some columns


# --- several arrays on one board -------------------------------------------------------------------
def _silent_to_count():
    """A fake transport whose board does not know ``:ARR:COUN?``: no reply to it."""
    from labrram.drivers.base import InstrumentTimeout
    from tests.conftest import FakeTransport

    class OlderBoard(FakeTransport):
        def read_message(self):
            if self.written[-1] == b":ARR:COUN?\n":
                raise InstrumentTimeout("no reply")
            return super().read_message()

    return OlderBoard()


def test_array_count_is_read_once(board, fake_transport):
    fake_transport.replies += [b"4\n"]
    assert board.array_count() == 4 and board.array_count() == 4
    assert fake_transport.written == [b":ARR:COUN?\n"]


def test_an_older_board_without_the_count_query_carries_one_array(fake_transport):
    """It answers nothing to ``:ARR:COUN?`` (tried 1 + retries times) and queues -113; selecting
    its array 0 then sends nothing."""
    fake_transport = _silent_to_count()
    board = CrossbarBoard(fake_transport, limits=SafeLimits(), retries=1, retry_delay=0)
    fake_transport.replies += [b'-113,"Undefined header"\n', b'-113,"Undefined header"\n', b'+0,"No error"\n']
    board.select_array(0)
    assert board.array_count() == 1 and board.selected_array == 0
    assert fake_transport.written == [b":ARR:COUN?\n", b":ARR:COUN?\n", b":SYST:ERR?\n", b":SYST:ERR?\n", b":SYST:ERR?\n"]
    with pytest.raises(ValueError, match=r"array 1 outside 0\.\.0"):
        board.select_array(1)


def test_a_silent_board_with_a_clean_error_queue_is_a_link_fault_not_an_older_board(fake_transport):
    from labrram.drivers.base import InstrumentTimeout

    fake_transport = _silent_to_count()
    board = CrossbarBoard(fake_transport, limits=SafeLimits(), retries=0)
    fake_transport.replies += [b'+0,"No error"\n']
    with pytest.raises(InstrumentTimeout):
        board.array_count()
    assert board._array_count is None  # asked again next time


def test_select_array_is_checked_against_the_count_before_any_byte(board, fake_transport):
    fake_transport.replies += [b"4\n", b'+0,"No error"\n']
    board.select_array(2)
    assert fake_transport.written == [b":ARR:COUN?\n", b":ARR:SEL 2\n", b":SYST:ERR?\n"]
    assert board.selected_array == 2
    for bad in (4, -1, 1.0, True, "2"):
        with pytest.raises(ValueError, match="array"):
            board.select_array(bad)
    assert fake_transport.written == [b":ARR:COUN?\n", b":ARR:SEL 2\n", b":SYST:ERR?\n"]  # nothing more was sent
    assert board.selected_array == 2


def test_a_refused_selection_is_sent_again_then_raised(fake_transport):
    from labrram.drivers.base import InstrumentError

    board = CrossbarBoard(fake_transport, limits=SafeLimits(), retries=1, retry_delay=0)
    fake_transport.replies += [b"4\n", b'-222,"Data out of range"\n', b'+0,"No error"\n', b'-222,"Data out of range"\n', b'+0,"No error"\n']
    with pytest.raises(InstrumentError, match="-222"):
        board.select_array(3)
    assert fake_transport.written.count(b":ARR:SEL 3\n") == 2
    assert not board._selection_ok  # whatever the board did, the next array command selects 3 first


def test_the_size_is_read_for_each_selected_array(board, fake_transport):
    board._shape = None
    fake_transport.replies += [b"4\n", b'+0,"No error"\n', b"8,16\n", b'+0,"No error"\n', b"32,32\n"]
    board.select_array(1)
    board._configured = True
    assert board.shape == (8, 16)
    board.select_array(3)
    assert board.shape == (32, 32)
    fake_transport.replies += [b'+0,"No error"\n']
    board.select_array(1)
    assert board.shape == (8, 16)  # remembered per array: no second :ARR:SIZE?
    assert fake_transport.written[-2:] == [b":ARR:SEL 1\n", b":SYST:ERR?\n"]


@pytest.mark.parametrize("read", [True, False])
def test_after_a_recovery_the_array_is_selected_again_before_the_next_pulse(board, fake_transport, read):
    """A board that rebooted selects array 0: the driver sends ``:ARR:SEL`` (checked) before the
    pulse, with the data format and before anything else reaches the array."""
    fake_transport.replies += [b"4\n", b'+0,"No error"\n']
    board.select_array(2)
    board._shape = (4, 4)  # its size known
    board._configured = True
    board._link_dirty = True  # the last exchange failed (the board may have rebooted)
    del fake_transport.written[:]
    if read:
        fake_transport.replies += [b'+0,"No error"\n', np.array([1e-5], dtype="<f4").tobytes()]
        board.pulse("SET", [1], [1], 1.8, 1.5, 1e-6, read=True)
        pulse_at = next(i for i, w in enumerate(fake_transport.written) if w.startswith(b":PULS:READ:LIST?"))
    else:  # the counter (the recovery happens on its first query), then the selection, then the batch
        fake_transport.replies += [b"1\n", b"0\n", b"0\n", b"1\n", b'+0,"No error"\n', b'+0,"No error"\n', b"1\n", b"1\n", b"1\n"]
        board.pulse("SET", [1], [1], 1.8, 1.5, 1e-6)
        pulse_at = next(i for i, w in enumerate(fake_transport.written) if w.startswith(b":PULS:LIST"))
    before = fake_transport.written[:pulse_at]
    assert b":ARR:SEL 2\n" in before and before.index(b":ARR:SEL 2\n") < pulse_at
    assert before[before.index(b":ARR:SEL 2\n") + 1] == b":SYST:ERR?\n"  # checked before the pulse
    assert before.count(b":ARR:SEL 2\n") == 1


def test_a_one_array_board_sees_no_selection(board, fake_transport):
    fake_transport.replies += [b"1\n"]
    board.select_array(0)
    board._configured, board._link_dirty = True, True
    fake_transport.replies += [np.zeros(4, dtype="<f4").tobytes()]
    board.measure_row(0)
    assert fake_transport.written == [b":ARR:COUN?\n", b"*CLS;:FORM REAL\n", b":MEAS:ROW? 0\n"]


def test_per_device_budgets_are_per_array(fake_transport):
    from labrram.safety import LimitError

    board = CrossbarBoard(fake_transport, limits=SafeLimits(max_pulses_per_device=2))
    board._shape, board._array_count = (4, 4), 2
    board._shapes = {0: (4, 4), 1: (4, 4)}
    for array in (0, 1):
        board._array = array
        board._pulse_arrays("SET", [0, 0], [0, 0], 1.8, 1.5, 1e-6)  # two pulses: the budget of (0, 0) on each array
    with pytest.raises(LimitError, match=r"device \(0, 0\) of array 1 would receive 3 pulses"):
        board._pulse_arrays("SET", [0], [0], 1.8, 1.5, 1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_per_device_budgets_count_batches_with_and_without_repeated_devices(fake_transport, seed):
    """The connection's count of pulses and energy per device, batch after batch, is the sum over
    every pulse sent to it, whether a batch lists a device once or several times."""
    from labrram.safety import LimitError

    rng = np.random.default_rng(seed)
    limits = SafeLimits(max_pulses_per_device=6, max_energy=2.5e-9, max_energy_per_device=5e-9)
    board = CrossbarBoard(fake_transport, limits=limits)
    board._shape, board._array_count, board._shapes = (4, 4), 1, {0: (4, 4)}
    pulses, energy = np.zeros((4, 4), int), np.zeros((4, 4))
    for _ in range(12):
        n = int(rng.integers(1, 10))
        flat = rng.choice(16, n, replace=bool(rng.integers(2)))
        amplitude = rng.uniform(0.5, 2.0, n)
        r, c = flat // 4, flat % 4
        p2, e2 = pulses.copy(), energy.copy()
        np.add.at(p2, (r, c), 1)
        np.add.at(e2, (r, c), amplitude * limits.max_current * 1e-6)
        if p2.max() > 6 or e2.max() > 5e-9:
            with pytest.raises(LimitError, match="per-device budget"):
                board._pulse_arrays("SET", r, c, amplitude, 1.5, 1e-6)
            continue  # refused whole: nothing counted
        board._pulse_arrays("SET", r, c, amplitude, 1.5, 1e-6)
        pulses, energy = p2, e2
    got_p, got_e = board.spent(np.arange(16) // 4, np.arange(16) % 4)
    np.testing.assert_array_equal(got_p, pulses.ravel())
    np.testing.assert_allclose(got_e, energy.ravel())


def test_a_refused_batch_names_the_lowest_device_at_the_top_of_its_budget(fake_transport):
    """Several devices may reach the budget in one batch: the refusal names the first by row,
    then column, whatever order the batch lists them in."""
    from labrram.safety import LimitError

    board = CrossbarBoard(fake_transport, limits=SafeLimits(max_pulses_per_device=1))
    board._shape, board._array_count, board._shapes = (4, 4), 1, {0: (4, 4)}
    board._pulse_arrays("SET", [3, 1, 2], [2, 3, 0], 1.0, 1.5, 1e-6)
    # each listed once, in any order; then with (3, 2) and (1, 3) listed twice (the sorted path)
    for rows, cols in (([3, 1, 2], [2, 3, 0]), ([2, 3, 1, 0], [0, 2, 3, 0]), ([3, 1, 3, 2, 1], [2, 3, 2, 0, 3])):
        with pytest.raises(LimitError, match=r"device \(1, 3\) would receive"):
            board._pulse_arrays("SET", rows, cols, 1.0, 1.5, 1e-6)
