"""ArC ONE driver: the exact bytes of its serial protocol, limits before any byte, the raw
guard, and what a failed pulse exchange proves."""

import numpy as np
import pytest

from labrram.drivers.arc1 import ArcOneBoard
from labrram.drivers.board_base import DELIVERED, NOT_DELIVERED, UNKNOWN, BoardCapabilityError, PulseDeliveryError
from labrram.safety import LimitError, SafeLimits


def f32(*values):
    return np.array(values, dtype="<f4").tobytes()


@pytest.fixture
def arc(fake_transport):
    b = ArcOneBoard(fake_transport, limits=SafeLimits(), rows=4, cols=3)
    b.wait = lambda s: None
    return b


def configure(arc, fake_transport, v=0.2):
    fake_transport.replies += [b"1\n", np.array([2, 5], dtype="<u2").tobytes()]
    arc.configure(read_voltage=v)
    fake_transport.written.clear()


def test_initialisation_bytes(arc, fake_transport):
    """Reset, initialise (cycles, words, bits, read mode, session, sneak path, Vread with six
    decimals), acknowledge, firmware version — libarc1's packets, byte for byte."""
    fake_transport.replies += [b"1\n", np.array([2, 5], dtype="<u2").tobytes()]
    arc.configure(read_voltage=0.2)
    assert fake_transport.written == [b"00\n", b"0\n50\n4\n3\n2\n0\n0\n0.200000\n", b"01\n2\n0.200000\n", b"999\n"]
    assert arc.firmware == (2, 5)


def test_a_wrong_initialisation_reply_is_an_error(arc, fake_transport):
    from labrram.drivers.base import ReplyError

    fake_transport.replies += [b"0\n"]
    with pytest.raises(ReplyError, match="initialisation"):
        arc.configure(read_voltage=0.2)


def test_read_all_is_one_exchange_word_major(arc, fake_transport):
    configure(arc, fake_transport)
    r = np.arange(1, 13, dtype=float) * 1e3
    fake_transport.replies.append(f32(*r))
    i = arc.measure_all()
    assert fake_transport.written == [b"2\n1\n4\n3\n"]
    np.testing.assert_allclose(i, 0.2 / r.reshape(4, 3), rtol=1e-6)


def test_masked_read_one_device_per_exchange_one_based(arc, fake_transport):
    configure(arc, fake_transport)
    fake_transport.replies += [f32(1e4), f32(2e4)]
    i = arc.measure_cells([0, 3], [2, 1])
    assert fake_transport.written == [b"2\n2\n32\n32\n2\n", b"1\n3\n", b"4\n2\n"]
    np.testing.assert_allclose(i, [0.2 / 1e4, 0.2 / 2e4], rtol=1e-6)


def test_set_and_reset_are_pulse_reads_of_opposite_sign(arc, fake_transport):
    configure(arc, fake_transport)
    fake_transport.replies += [f32(5e3), f32(6e3)]
    g = arc.pulse("SET", [0, 1], [0, 2], 1.5, 0.0, 10e-6, read=True)
    fake_transport.replies += [f32(9e3)]
    arc.pulse("RESET", [2], [1], 1.25, 0.0, 2e-6)
    assert fake_transport.written == [b"3\n1\n1\n1.500000\n0.000010\n", b"3\n2\n3\n1.500000\n0.000010\n", b"3\n3\n2\n-1.250000\n0.000002\n"]
    np.testing.assert_allclose(g, [0.2 / 5e3, 0.2 / 6e3], rtol=1e-6)


def test_read_voltage_and_bias(arc, fake_transport):
    configure(arc, fake_transport)
    arc.read_voltage = -0.3  # negative: the 4-probe TIA's negative mode
    assert fake_transport.written == [b"01\n3\n-0.300000\n"]
    fake_transport.written.clear()
    fake_transport.replies += [b"1\n", np.array([2, 5], dtype="<u2").tobytes()]
    arc.set_bias("HALF")
    assert fake_transport.written[1] == b"0\n50\n4\n3\n3\n0\n1\n-0.300000\n"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(amplitude=3.5, gate=0.0, width=1e-5), "bench limit"),
        (dict(amplitude=1.0, gate=1.8, width=1e-5), "no word-line gate"),
        (dict(amplitude=1.0, gate=0.0, width=1.5e-6), "steps of 1e-06"),
        (dict(amplitude=1.0, gate=0.0, width=1e-7), "width"),
        (dict(amplitude=float("nan"), gate=0.0, width=1e-5), "finite|NaN|nan"),
    ],
)
def test_pulses_beyond_limits_send_nothing(arc, fake_transport, kwargs, match):
    configure(arc, fake_transport)
    with pytest.raises((LimitError, ValueError), match=match):
        arc.pulse("SET", [0], [0], **kwargs)
    assert fake_transport.written == []


def test_cells_outside_the_array_send_nothing(arc, fake_transport):
    configure(arc, fake_transport)
    with pytest.raises(ValueError, match="outside the 4x3 array"):
        arc.measure_cells([4], [0])
    assert fake_transport.written == []


def test_per_device_budget_refuses_before_any_byte(fake_transport):
    arc = ArcOneBoard(fake_transport, limits=SafeLimits(max_pulses_per_device=2), rows=2, cols=2)
    arc.wait = lambda s: None
    configure(arc, fake_transport)
    with pytest.raises(LimitError, match="per-device budget"):
        arc.pulse("SET", [0, 0, 0], [1, 1, 1], 1.0, 0.0, 1e-5)
    assert fake_transport.written == []


def test_a_failed_pulse_exchange_says_what_was_delivered(arc, fake_transport):
    configure(arc, fake_transport)
    fake_transport.replies += [f32(5e3)]  # the second pulse's reply never comes
    with pytest.raises(PulseDeliveryError) as info:
        arc.pulse("SET", [0, 1, 2], [0, 0, 0], 1.0, 0.0, 1e-5)
    assert list(info.value.status) == [DELIVERED, UNKNOWN, NOT_DELIVERED]
    assert len(fake_transport.written) == 2  # the third pulse was never sent


def test_raw_packets_are_guarded_even_in_pieces(arc, fake_transport):
    configure(arc, fake_transport)
    with pytest.raises(LimitError):
        arc.write_bytes(b"3\n1\n1\n5.000000\n0.000010\n")
    arc.write_bytes(b"3\n1\n1\n")  # the start of a packet: harmless until its levels come
    with pytest.raises(LimitError):
        arc.write_bytes(b"9.0\n0.5\n")
    with pytest.raises(LimitError):
        arc.write_bytes(b"01\n2\n4.0\n")  # a read voltage beyond the limits
    arc.write_bytes(b"1.0\n0.00001\n")  # completes the pulse within the limits
    assert fake_transport.written == [b"3\n1\n1\n", b"1.0\n0.00001\n"]
    with arc.unguarded("testing the opt-out"):
        arc.write_bytes(b"04\n4.0\n0.00001\n")
    assert fake_transport.written[-1] == b"04\n4.0\n0.00001\n"


def test_what_the_arc_one_cannot_do_is_refused(arc):
    with pytest.raises(BoardCapabilityError, match="matrix-vector"):
        arc.mvm(np.zeros(4))
    with pytest.raises(BoardCapabilityError, match="SMU"):
        arc.route_smu(0, 0)
    with pytest.raises(BoardCapabilityError, match="pulse counter"):
        arc.pulse_counter()
    assert arc.delivery(0, 3) == UNKNOWN


@pytest.mark.parametrize("kwargs", [dict(rows=33), dict(cols=0), dict(read_cycles=0), dict(read_mode="FAST"), dict(array_kind="reram")])
def test_bad_options_are_refused(fake_transport, kwargs):
    with pytest.raises(ValueError):
        ArcOneBoard(fake_transport, **kwargs)
