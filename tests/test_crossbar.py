"""The crossbar API on the default simulated station."""

import numpy as np
import pytest

from labrram.cells import Cells, CellsError
from labrram.crossbar import as_cells
from labrram.station import load_station


@pytest.fixture
def station(bench):
    with load_station().connect() as connected:
        yield connected


def test_as_cells_forms():
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = mask[3, 0] = True
    forms = (mask, (np.array([1, 3]), np.array([2, 0])), Cells.pairs([(1, 2), (3, 0)]), Cells.rows_cols([1, 3], [2, 0]), Cells.mask(mask))
    for cells in forms:
        r, c = as_cells(cells, (4, 4))
        assert list(r) == [1, 3] and list(c) == [2, 0]
    with pytest.raises(ValueError):
        as_cells(np.zeros((3, 3), bool), (4, 4))
    with pytest.raises(ValueError):
        as_cells((np.array([0.5]), np.array([1])), (4, 4))
    with pytest.raises(ValueError, match="outside"):
        as_cells(Cells.pairs([(4, 0)]), (4, 4))


@pytest.mark.parametrize("cells", [([3, 4], [5, 6]), [[3, 4], [5, 6]], np.array([[3, 4], [5, 6]]), [(3, 4)]])
def test_ambiguous_cell_selections_are_refused_with_the_constructors_named(cells):
    """``([3, 4], [5, 6])`` and ``[[3, 4], [5, 6]]`` hold the same numbers and would name different
    devices: both are refused, and the message says how to say which is meant."""
    with pytest.raises(CellsError, match=r"ambiguous.*Cells\.pairs.*Cells\.rows_cols"):
        as_cells(cells, (8, 8))


def test_cells_constructors_say_which_reading_is_meant():
    a, b = Cells.pairs([(3, 4), (5, 6)]), Cells.rows_cols([3, 4], [5, 6])
    assert list(zip(a.rows, a.cols)) == [(3, 4), (5, 6)]
    assert list(zip(b.rows, b.cols)) == [(3, 5), (4, 6)]
    block = Cells.block(range(2), range(3))
    assert block.size == 6 and list(block.rows) == [0, 0, 0, 1, 1, 1] and list(block.cols) == [0, 1, 2, 0, 1, 2]
    assert Cells.block(slice(0, 2), slice(1, 2), shape=(4, 4)).size == 2
    assert Cells.all((3, 5)).size == 15
    with pytest.raises(CellsError, match="pairs"):
        Cells.pairs([1, 2, 3])
    with pytest.raises(CellsError, match="rows for"):
        Cells.rows_cols([1, 2], [3])
    with pytest.raises(CellsError, match="integer"):
        Cells.rows_cols([0.5], [1])


def test_whole_array_read_is_a_handful_of_transactions(station, bench, mocker):
    xb = station.crossbar
    xb.read()  # set-up exchanges happen once
    spy = mocker.spy(xb.board.transport, "write")
    g = xb.read()
    assert spy.call_count == 1
    assert g.shape == (128, 128)
    truth = bench.chip._conductance(*np.indices((128, 128)))
    np.testing.assert_allclose(g, truth, rtol=0.06)


def test_set_reset_and_read_cells(station, bench):
    xb = station.crossbar
    cells = Cells.pairs(np.argwhere(bench.chip._stuck == 0)[:32])
    g_set = xb.set(cells, gate=1.9, read=True)
    truth = bench.chip.reveal_truth()
    expected = truth.median(truth.transistor.compliance(1.9))
    assert np.median(g_set) == pytest.approx(expected, rel=0.1)
    g_reset = xb.reset(cells, read=True)
    assert np.all(g_reset < 30e-6)
    np.testing.assert_allclose(xb.read(cells), g_reset, rtol=0.1, atol=0.2e-6)


def test_per_cell_gate_voltages(station, bench):
    xb = station.crossbar
    cells = Cells.pairs(np.argwhere(bench.chip._stuck == 0)[:2])
    g = xb.set(cells, gate=np.array([1.5, 2.2]), read=True)
    assert g[1] > 2 * g[0]


def test_precise_read_and_iv_sweep_through_the_smu(station, bench):
    xb = station.crossbar
    r, c = np.argwhere(bench.chip._stuck == 0)[0]
    xb.set((np.array([r]), np.array([c])), gate=2.0)
    g = float(bench.chip._conductance(np.array([r]), np.array([c]))[0])
    assert xb.read_precise(r, c) == pytest.approx(g, rel=0.05)
    v = np.linspace(-0.2, 0.2, 9)
    i = xb.iv_sweep(r, c, v)
    assert np.polyfit(v, i, 1)[0] == pytest.approx(g, rel=0.05)
    assert bench.outputs_on() == []
    assert bench.board.route is None


def test_mvm(station, bench):
    v = np.full(128, 0.1)
    i = station.crossbar.mvm(v)
    truth = bench.chip._conductance(*np.indices((128, 128)))
    np.testing.assert_allclose(i, v @ truth, rtol=0.03)


def test_exception_mid_operation_leaves_every_output_off(bench):
    with pytest.raises(RuntimeError, match="boom"):
        with load_station().connect() as connected:
            smu = connected.instruments["smu"]
            connected.crossbar.board.route_smu(0, 0)
            smu.configure_voltage_source(1e-3)
            smu.set_voltage(0.5)
            smu.enable_output()
            assert bench.outputs_on() == ["k2400"]
            raise RuntimeError("boom")
    assert bench.outputs_on() == []
    assert bench.board.route is None
    # the ramp-down reached the die: 0.5 V stepped down to 0 V before the output went off
    log = bench.chip.pulse_log.records
    bias = log[log["kind"] == 2]
    np.testing.assert_allclose(bias["amplitude"], [0.5, 0.4, 0.3, 0.2, 0.1, 0.0], atol=1e-6)


def test_limits_refuse_before_any_byte(station, bench, mocker):
    from labrram.safety import LimitError

    xb = station.crossbar
    xb.read()
    spy = mocker.spy(xb.board.transport, "write")
    with pytest.raises(LimitError):
        xb.set(Cells.pairs([(0, 0)]), amplitude=4.0)
    with pytest.raises(LimitError):
        xb.reset(Cells.pairs([(0, 0)]), gate=5.5)
    with pytest.raises(LimitError):
        xb.iv_sweep(0, 0, [0.1, 3.5])
    spy.assert_not_called()
    assert len(bench.chip.pulse_log) == 0
