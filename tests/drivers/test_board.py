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
