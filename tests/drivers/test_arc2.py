"""ArC TWO driver: the exact pyarc2 calls (channels from the map, volts, nanoseconds), limits and
budgets refused before any call, delivery status of a failed batch, grounding on close, channel
maps, and the station template. pyarc2's ``Instrument`` and ``find_ids`` are mocked: no board."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from unittest.mock import call

import numpy as np
import pytest

pyarc2 = pytest.importorskip("pyarc2", reason="pyarc2 (the ArC TWO host library, extra 'arc2') is not installed")

from labrram.drivers import driver_class  # noqa: E402
from labrram.drivers.arc2 import (  # noqa: E402
    BIT_CHANNELS,
    WORD_CHANNELS,
    ArcTwoBoard,
    ChannelMapError,
    load_channel_map,
    parse_channel_map,
)
from labrram.drivers.base import InstrumentError  # noqa: E402
from labrram.drivers.board_base import DELIVERED, NOT_DELIVERED, UNKNOWN, BoardCapabilityError, PulseDeliveryError  # noqa: E402
from labrram.safety import LimitError, SafeLimits  # noqa: E402
from labrram.station import StationError, load_station  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAP = load_channel_map("resarray32")
W, B = MAP.words, MAP.bits  # channel of word line r, bit line c


@pytest.fixture
def fw(tmp_path):
    path = tmp_path / "arc2fw.bin"
    path.write_bytes(b"\0" * 16)
    return path


@pytest.fixture
def hw(mocker):
    """A mocked pyarc2: ``find_ids`` lists board 0; ``Instrument(...)`` returns ``hw.inst``."""
    inst = mocker.create_autospec(pyarc2.Instrument, instance=True, name="arc")  # names and signatures as pyarc2 has them
    ctor = mocker.patch.object(pyarc2, "Instrument", return_value=inst)
    ids = mocker.patch.object(pyarc2, "find_ids", return_value=[0])
    return type("HW", (), {"inst": inst, "ctor": ctor, "ids": ids})


def open_board(fw, limits=None, **kw) -> ArcTwoBoard:
    return ArcTwoBoard.open("arc2://0", limits=limits or SafeLimits(), firmware=fw, name="arc", retry_delay=0.0, **kw)


@pytest.fixture
def board(hw, fw):
    b = open_board(fw)
    yield b
    b._closed = True  # no grounding calls after the test's own assertions


def slice_result(values: dict[int, float]) -> np.ndarray:
    """What pyarc2 returns for a word-line slice: 32 bit-channel values, ascending channel order."""
    out = np.full(32, np.nan, dtype=np.float32)
    for ch, v in values.items():
        out[BIT_CHANNELS.index(ch)] = v
    return out


# --- opening -----------------------------------------------------------------------------------
def test_open_checks_the_id_then_loads_the_firmware(hw, fw):
    b = open_board(fw)
    hw.ids.assert_called_once_with()
    hw.ctor.assert_called_once_with(0, str(fw))
    assert hw.inst.method_calls == []  # nothing sent until asked
    assert b.shape == (32, 32) and b.array_kind() == "passive"
    assert not (b.has_gate or b.can_mvm or b.can_route_smu) and b.bias_schemes == ()
    assert b.idn.startswith("ArC Instruments,ArC TWO,arc2://0,pyarc2 ")


def test_control_mode_is_set_when_asked(hw, fw):
    open_board(fw, control_mode="header")
    assert hw.inst.method_calls == [call.set_control_mode(pyarc2.ControlMode.Header), call.execute()]


@pytest.mark.parametrize(
    "address, kwargs, error, match",
    [
        ("arc2://3", {}, InstrumentError, r"no ArC TWO with id 3; pyarc2.find_ids\(\) found ids \[0\]"),
        ("arc2://0", {"firmware": None}, ValueError, "needs its firmware file"),
        ("arc2://0", {"firmware": "/nonexistent/fw.bin"}, ValueError, "does not exist"),
        ("arc2://0", {"channel_map": "nosuchmap"}, ChannelMapError, "no channel map named 'nosuchmap'"),
        ("arc2://0", {"control_mode": "socket"}, ValueError, "control_mode"),
        ("GPIB0::1::INSTR", {}, ValueError, "not an ArC TWO address"),
    ],
)
def test_open_refuses_before_touching_the_board(hw, fw, address, kwargs, error, match):
    kw = {"firmware": fw, **kwargs}
    with pytest.raises(error, match=match):
        ArcTwoBoard.open(address, **kw)
    hw.ctor.assert_not_called()
    assert hw.inst.method_calls == []


def test_without_pyarc2_the_error_says_how_to_install_it(fw, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarc2", None)  # import pyarc2 now raises ImportError
    with pytest.raises(InstrumentError, match=r"pip install 'labrram\[arc2\]'"):
        ArcTwoBoard.open("arc2://0", firmware=fw)


@pytest.mark.parametrize("address, ok", [("arc2://0", True), ("ARC2://12", True), ("arc2://", False), ("arc2://-1", False),
                                         ("arc2://x", False), ("/dev/ttyACM0", False), (3, False)])  # fmt: skip
def test_address_problem(address, ok):
    problem = ArcTwoBoard.address_problem(address)
    assert (problem is None) == ok
    if not ok:
        assert "arc2://<device id>" in problem


# --- reads -------------------------------------------------------------------------------------
def test_one_cell_is_read_one_word_line_low_bit_line_high(board, hw):
    board.configure(read_voltage=0.3)
    hw.inst.read_one.return_value = -1.5e-5  # the sensed sign depends on the channel: the magnitude counts
    np.testing.assert_allclose(board.measure_cells([0], [3]), [1.5e-5])
    assert hw.inst.method_calls == [call.read_one(W[0], B[3], 0.3)]


def test_cells_of_one_word_line_are_one_masked_slice_read(board, hw):
    hw.inst.read_slice_masked.return_value = slice_result({B[0]: 1e-6, B[5]: 2e-6})
    i = board.measure_cells([2, 2, 2], [5, 0, 5])
    np.testing.assert_allclose(i, [2e-6, 1e-6, 2e-6], rtol=1e-6)
    assert hw.inst.method_calls == [call.read_slice_masked(W[2], sorted([B[0], B[5]]), 0.2)]


def test_a_row_is_one_slice_read_cut_to_the_map(board, hw):
    raw = np.arange(1, 33, dtype=np.float32) * 1e-7
    hw.inst.read_slice.return_value = raw
    i = board.measure_row(7)
    assert hw.inst.method_calls == [call.read_slice(W[7], 0.2)]
    np.testing.assert_allclose(i, [raw[BIT_CHANNELS.index(b)] for b in B], rtol=1e-6)


def test_the_whole_array_is_one_read_all_biasing_the_word_lines(board, hw):
    raw = (np.arange(32 * 32, dtype=np.float32).reshape(32, 32) + 1) * 1e-8
    hw.inst.read_all.return_value = raw
    board.configure(read_voltage=-0.25)
    g = board.measure_all()
    assert hw.inst.method_calls == [call.read_all(-0.25, pyarc2.BiasOrder.Rows)]
    assert g.shape == (32, 32)
    for r, c in [(0, 0), (1, 0), (0, 1), (17, 30)]:
        assert g[r, c] == pytest.approx(-raw[WORD_CHANNELS.index(W[r]), BIT_CHANNELS.index(B[c])], rel=1e-6)


def test_a_failed_or_invalid_read_is_repeated_then_reported(board, hw):
    hw.inst.read_one.side_effect = [RuntimeError("FPGA Error"), float("nan"), 2e-6]
    assert board.measure_cells([1], [1])[0] == pytest.approx(2e-6)
    assert hw.inst.read_one.call_count == 3
    hw.inst.read_one.side_effect = None
    hw.inst.read_one.return_value = float("nan")
    with pytest.raises(InstrumentError, match="retries exhausted"):
        board.measure_cells([1], [1])


def test_read_voltage_is_checked_before_any_call(hw, fw):
    b = open_board(fw, limits=SafeLimits(max_voltage=15.0))
    with pytest.raises(LimitError, match="±10 V"):
        b.configure(read_voltage=12.0)
    with pytest.raises(LimitError, match="no word-line gate"):
        b.configure(read_voltage=0.2, read_gate=3.3)
    assert hw.inst.method_calls == []


# --- pulses ------------------------------------------------------------------------------------
def test_set_is_positive_on_the_bit_line_in_nanoseconds(board, hw):
    assert board.pulse("SET", [0], [1], 1.5, 0.0, 1e-6) is None
    assert hw.inst.method_calls == [call.pulse_one(W[0], B[1], 1.5, 1000), call.ground_all_fast(), call.execute(), call.wait()]


def test_reset_is_negative(board, hw):
    board.pulse("RESET", [5], [6], 2.0, 0.0, 100e-9)
    assert hw.inst.method_calls[0] == call.pulse_one(W[5], B[6], -2.0, 100)


def test_cells_of_one_word_line_with_one_setting_are_one_slice_pulse(board, hw):
    board.pulse("SET", [3, 3, 3, 4], [0, 1, 2, 2], 1.2, 0.0, 250e-9)
    mask = sorted([B[0], B[1], B[2]])
    assert hw.inst.method_calls == [
        call.pulse_slice_masked(W[3], 1.2, 250, mask), call.ground_all_fast(), call.execute(), call.wait(),
        call.pulse_one(W[4], B[2], 1.2, 250), call.ground_all_fast(), call.execute(), call.wait(),
    ]  # fmt: skip


def test_pulse_read_returns_currents_after_each_call(board, hw):
    hw.inst.pulseread_one.return_value = 3e-6
    hw.inst.pulseread_slice_masked.return_value = slice_result({B[4]: 1e-6, B[9]: 4e-6})
    board.configure(read_voltage=0.1)
    i = board.pulse("RESET", [0, 6, 6], [0, 9, 4], 1.0, 0.0, 1e-6, read=True)
    np.testing.assert_allclose(i, [3e-6, 4e-6, 1e-6], rtol=1e-6)
    assert hw.inst.method_calls == [
        call.pulseread_one(W[0], B[0], -1.0, 1000, 0.1),
        call.pulseread_slice_masked(W[6], sorted([B[9], B[4]]), -1.0, 1000, 0.1),
    ]


@pytest.mark.parametrize(
    "limits, kwargs, match",
    [
        (SafeLimits(), dict(amplitude=3.5, gate=0.0, width=1e-6), "bench limit"),
        (SafeLimits(max_voltage=15.0), dict(amplitude=12.0, gate=0.0, width=1e-7), r"range \[0, 10\] V"),
        (SafeLimits(), dict(amplitude=1.0, gate=0.0, width=20e-9), r"range \[4e-08, 1\] s"),
        (SafeLimits(), dict(amplitude=1.0, gate=0.0, width=2e-3), "pulse width outside"),
        (SafeLimits(), dict(amplitude=1.0, gate=1.8, width=1e-6), "no word-line gate"),
        (SafeLimits(), dict(amplitude=float("nan"), gate=0.0, width=1e-6), "finite"),
        (SafeLimits(), dict(amplitude=-1.0, gate=0.0, width=1e-6), "magnitudes"),
    ],
)
def test_pulse_limits_refuse_before_any_call(hw, fw, limits, kwargs, match):
    b = open_board(fw, limits=limits)
    with pytest.raises(ValueError, match=match):
        b.pulse("SET", [0, 1], [0, 1], **kwargs)
    assert hw.inst.method_calls == []


def test_cells_outside_the_map_and_bad_kinds_are_refused(board, hw):
    with pytest.raises(ValueError, match="outside the 32x32 array"):
        board.pulse("SET", [32], [0], 1.0, 0.0, 1e-6)
    with pytest.raises(ValueError, match="SET or RESET"):
        board.pulse("FORM", [0], [0], 1.0, 0.0, 1e-6)
    assert hw.inst.method_calls == []


def test_per_device_budgets_refuse_the_whole_batch_before_any_call(hw, fw):
    b = open_board(fw, limits=SafeLimits(max_pulses_per_device=2))
    b.pulse("SET", [0], [0], 1.0, 0.0, 1e-6)
    hw.inst.reset_mock()
    with pytest.raises(LimitError, match=r"device \(0, 0\) would receive 3 pulses"):
        b.pulse("SET", [1, 0, 0], [1, 0, 0], 1.0, 0.0, 1e-6)
    assert hw.inst.method_calls == []


def test_a_failed_call_reports_per_pulse_delivery_and_grounds(board, hw):
    hw.inst.pulse_one.side_effect = [None, RuntimeError("FPGA Error: transfer failed"), None]
    with pytest.raises(PulseDeliveryError, match="FPGA Error") as info:
        board.pulse("SET", [0, 1, 2, 2], [0, 1, 2, 3], [1.0, 1.1, 1.2, 1.2], 0.0, 1e-6)
    assert list(info.value.status) == [DELIVERED, UNKNOWN, NOT_DELIVERED, NOT_DELIVERED]
    assert info.value.kind == "SET"
    assert hw.inst.method_calls == [
        call.pulse_one(W[0], B[0], 1.0, 1000), call.ground_all_fast(), call.execute(), call.wait(),
        call.pulse_one(W[1], B[1], 1.1, 1000), call.ground_all(), call.execute(), call.wait(),  # grounded after the failure
    ]  # fmt: skip


def test_an_invalid_reading_after_pulses_says_they_were_delivered(board, hw):
    hw.inst.pulseread_one.side_effect = [1e-6, float("nan")]
    with pytest.raises(PulseDeliveryError, match="delivered") as info:
        board.pulse("SET", [0, 1, 2], [0, 0, 0], 1.0, 0.0, 1e-6, read=True)
    assert list(info.value.status) == [DELIVERED, DELIVERED, NOT_DELIVERED]


# --- what the ArC TWO cannot do ----------------------------------------------------------------
def test_capabilities_it_lacks_are_refused(board, hw):
    for fn in (lambda: board.set_bias("HALF"), lambda: board.mvm(np.zeros(32)), lambda: board.route_smu(0, 0), board.pulse_counter):
        with pytest.raises(BoardCapabilityError):
            fn()
    assert board.read_errors() == [] and hw.inst.method_calls == []


# --- shutdown ----------------------------------------------------------------------------------
def test_close_grounds_every_channel_once(hw, fw):
    b = open_board(fw)
    b.close()
    b.close()
    assert hw.inst.method_calls == [call.ground_all(), call.execute(), call.wait()]
    with pytest.raises(InstrumentError, match="closed"):
        b.measure_cells([0], [0])


def test_leaving_a_block_on_an_error_grounds(hw, fw):
    with pytest.raises(RuntimeError, match="plan failed"):
        with open_board(fw):
            raise RuntimeError("plan failed")
    assert hw.inst.method_calls == [call.ground_all(), call.execute(), call.wait()]


def test_a_board_that_cannot_be_grounded_says_so(hw, fw):
    b = open_board(fw)
    hw.inst.ground_all.side_effect = RuntimeError("FPGA Error")
    with pytest.raises(InstrumentError, match="could not ground"):
        b.close()


# --- channel maps ------------------------------------------------------------------------------
def test_shipped_maps_are_complete_and_disjoint():
    for name in ("resarray32", "standard32"):
        m = load_channel_map(name)
        assert m.shape == (32, 32) and m.name == name
        assert sorted(m.words) == sorted(WORD_CHANNELS) and sorted(m.bits) == sorted(BIT_CHANNELS)
    assert load_channel_map(None) == load_channel_map("resarray32")


def test_a_map_from_a_file_sets_the_array_size(hw, tmp_path, fw):
    path = tmp_path / "small.toml"
    path.write_text('[config]\nname = "4x3"\nwords = 4\nbits = 3\n[mapping]\nwords = [16, 17, 48, 49]\nbits = [0, 32, 15]\n')
    b = open_board(fw, channel_map=str(path))
    assert b.shape == (4, 3) and b.channel_map.name == "4x3"
    b.pulse("SET", [2], [1], 1.0, 0.0, 1e-6)
    assert hw.inst.method_calls[0] == call.pulse_one(48, 32, 1.0, 1000)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[mapping]\nwords = [16]\n", r"\[mapping\] bits must be a non-empty list"),
        ("[config]\nwords = 2\n", "a \\[mapping\\] table"),
        ("[mapping]\nwords = [16, 'a']\nbits = [0]\n", r"words\[1\] = 'a' is not a channel number"),
        ("[mapping]\nwords = [64]\nbits = [0]\n", "channels 0..63"),
        ("[mapping]\nwords = [3]\nbits = [0]\n", r"words\[0\] = 3 is not a word-line channel"),
        ("[mapping]\nwords = [16]\nbits = [20]\n", r"bits\[0\] = 20 is not a bit-line channel"),
        ("[mapping]\nwords = [16, 16]\nbits = [0]\n", r"channel\(s\) \[16\] listed more than once"),
        ("[config]\nwords = 3\n[mapping]\nwords = [16, 17]\nbits = [0]\n", "words = 3 but \\[mapping\\] words lists 2"),
        ("[mapping]\nwords = [16]\nbits = [0]\nrows = [1]\n", r"unknown key\(s\) \['rows'\]"),
        ("[maping]\nwords = [16]\nbits = [0]\n", r"unknown table\(s\) \['maping'\]"),
        ("[mapping\n", "not valid TOML"),
    ],
)
def test_channel_map_errors_name_the_file_and_key(text, match):
    with pytest.raises(ChannelMapError, match=match) as info:
        parse_channel_map(text, "my-map.toml")
    assert str(info.value).startswith("my-map.toml") or "my-map" in str(info.value)


def test_a_missing_map_file_is_a_clear_error(tmp_path):
    with pytest.raises(ChannelMapError, match="channel map"):
        load_channel_map(str(tmp_path / "absent.toml"))


# --- station -----------------------------------------------------------------------------------
def test_the_hardware_template_parses_and_names_the_driver():
    st = load_station(ROOT / "labrram" / "stations" / "arc2.toml")
    assert not st.simulated
    board = st.instruments["board"]
    assert driver_class(board.driver) is ArcTwoBoard and board.address == "arc2://0"
    assert set(board.options) == {"firmware", "channel_map", "control_mode"}
    assert st.crossbar == {"board": "board", "read_voltage": 0.2}


def test_a_station_refuses_a_bad_address_or_option(tmp_path):
    text = (ROOT / "labrram" / "stations" / "arc2.toml").read_text()
    for old, new, match in (('"arc2://0"', '"arc2:/0"', "not an ArC TWO address"), ("control_mode =", "mode =", "not accepted by driver 'arc2'"),
                            ("read_voltage = 0.2 ", "read_voltage = 0.2\nread_gate = 2.0 ", "no word-line gate")):  # fmt: skip
        path = tmp_path / "st.toml"
        path.write_text(text.replace(old, new, 1))
        with pytest.raises(StationError, match=match):
            load_station(path)


def test_a_station_connects_reads_and_grounds_on_close(hw, fw, tmp_path):
    text = (ROOT / "labrram" / "stations" / "arc2.toml").read_text().replace("/path/to/arc2fw.bin", str(fw))
    path = tmp_path / "st.toml"
    path.write_text(text)
    hw.inst.read_one.return_value = 2e-6
    with load_station(path).connect() as connected:
        xb = connected.crossbar
        assert xb.read_gate == 0.0 and xb.shape == (32, 32)
        np.testing.assert_allclose(xb.read((np.array([4]), np.array([5]))), [1e-5])  # 2 µA at 0.2 V
    assert hw.inst.method_calls == [
        call.set_control_mode(pyarc2.ControlMode.Internal), call.execute(),
        call.read_one(W[4], B[5], 0.2),
        call.ground_all(), call.execute(), call.wait(),
    ]  # fmt: skip


def test_the_arc2_extra_pins_pyarc2():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["arc2"] == ["pyarc2==0.6.0"]


def _station_file(tmp_path, fw) -> Path:
    text = (ROOT / "labrram" / "stations" / "arc2.toml").read_text().replace("/path/to/arc2fw.bin", str(fw))
    path = tmp_path / "my-arc2.toml"
    path.write_text(text)
    return path


def test_info_names_the_board_and_its_array(hw, fw, tmp_path):
    from labrram.api import info

    summary = info(str(_station_file(tmp_path, fw)))
    assert summary["array"] == [32, 32] and not summary["simulated"]
    assert summary["instruments"]["board"]["idn"].startswith("ArC Instruments,ArC TWO,arc2://0")
    assert hw.inst.method_calls[-3:] == [call.ground_all(), call.execute(), call.wait()]


def test_the_docs_example_runs_against_the_documented_api(hw, fw, tmp_path, monkeypatch):
    """docs/boards.md's ArC TWO Python block, on a mocked pyarc2."""
    import re

    page = (ROOT / "docs" / "boards.md").read_text().split("## ArC TWO", 1)[1]
    block = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    code = "\n".join(line[3:] if line.startswith("   ") else line for line in block.splitlines())
    monkeypatch.chdir(_station_file(tmp_path, fw).parent)
    hw.inst.read_all.return_value = np.full((32, 32), 1e-6, dtype=np.float32)
    hw.inst.read_one.return_value = 5e-6
    exec(compile(code, "boards.md", "exec"), {"print": lambda *a: None})
    calls = hw.inst.method_calls
    assert call.read_all(0.2, pyarc2.BiasOrder.Rows) in calls
    assert call.pulse_one(W[0], B[3], 1.2, 1000) in calls
    assert call.read_one(W[0], B[3], 0.2) in calls
    assert calls[-3:] == [call.ground_all(), call.execute(), call.wait()]
