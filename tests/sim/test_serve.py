"""The simulated bench served to other processes: instruments on TCP sockets and pseudo-terminals
reached with the stock pyvisa-py backend and pyserial, bench time over the wire, and a whole
write-verify run through them."""

import time

import numpy as np
import pytest

import labrram
from labrram.station import parse_station

pyvisa = pytest.importorskip("pyvisa")
pytest.importorskip("pyvisa_py", reason="pyvisa-py not installed (pip install 'labrram[pyvisa-py]')")

STATION = """
[station]
name = "small"
[simulation]
seed = 3
rows = 16
cols = 16
[instruments.board]
driver = "labrram_board"
address = "labrram://default/board"
[instruments.smu]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
visa_library = "@labrram"
[instruments.tsp]
driver = "keithley2600"
address = "GPIB0::26::INSTR"
visa_library = "@labrram"
[instruments.b2902]
driver = "keysight_b2900"
address = "USB0::0x0957::0x8C18::MY51140001::INSTR"
visa_library = "@labrram"
[crossbar]
board = "board"
smu = "smu"
"""


@pytest.fixture
def served():
    station = parse_station(STATION, "<small>")
    server = labrram.serve(station=station, port=0)
    yield server
    server.close()


def _open(rm, address):
    return rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=5000)


def test_every_instrument_answers_idn_through_pyvisa_py(served):
    rm = pyvisa.ResourceManager("@py")
    idn = {}
    for name, s in served.served.items():
        inst = _open(rm, s.address)
        idn[name] = inst.query("*IDN?")
        inst.close()
    assert idn["board"].startswith("labrram,XB-1T1R-16x16")
    assert "MODEL 2400" in idn["smu"] and "2636B" in idn["tsp"] and "B2902A" in idn["b2902"]
    assert idn["clock"].startswith("labrram,bench-clock")


def test_a_binary_block_over_a_served_serial_port_with_pyvisa_py(served):
    """The board's whole-array read (one IEEE 488.2 block holding newline bytes) through
    pyvisa-py's ASRL resource, read by length."""
    from labrram.drivers.board import CrossbarBoard

    board = CrossbarBoard.open(served.served["board"].address, visa_library="@py")
    try:
        currents = board.measure_all()
    finally:
        board.close()
    g_true = served.bench.chip._conductance(*np.indices((16, 16)).reshape(2, -1)).reshape(16, 16)
    assert currents.shape == (16, 16)
    assert np.median(np.abs(currents / 0.2 / g_true - 1)) < 0.05


def test_a_write_verify_run_through_the_served_bench(served, tmp_path):
    """A station file that points at the served bench like at hardware: the run goes through
    pyvisa-py over the sockets and the pseudo-terminal, and its bench time comes from the served
    clock."""
    station = parse_station(served.station_text(), str(tmp_path / "served.toml"))
    assert not station.simulated and "clock" in station.instruments
    assert all(e.visa_library == "@py" for e in station.instruments.values())
    before = served.bench.clock.now
    result = labrram.program("uniform:40e-6:200e-6", station=station, out=tmp_path / "run.zarr")
    s = result.summary()
    assert s["devices"] == 256 and s["converged_fraction"] > 0.95
    spent = served.bench.clock.now - before
    assert 0 < result.bench_time <= spent
    assert served.bench.board.pulse_count == int(result.pulses.sum())


def test_waits_cost_bench_time_not_wall_time(served, tmp_path):
    station = parse_station(served.station_text(), "<served>")
    with station.connect() as st:
        t0, w0 = st.timer.now(), time.perf_counter()
        st.timer.wait(3600.0)
        assert st.timer.now() - t0 >= 3600.0 and time.perf_counter() - w0 < 5
        assert st.bench_time()["wait"] >= 3600.0


def test_a_stopped_server_is_an_instrument_that_vanished(tmp_path):
    from labrram.drivers.base import ConnectionLost
    from labrram.station import ShutdownError

    station = parse_station(STATION, "<small>")
    server = labrram.serve(station=station, port=0)
    served = parse_station(server.station_text().replace("timeout = 5.0", "timeout = 0.5"), "<served>")
    with pytest.raises(ShutdownError, match="smu"):  # what cannot be reached cannot be made safe: said so
        with served.connect() as st:
            smu = st.instruments["smu"]
            assert "2400" in smu.idn
            server.close()
            with pytest.raises(ConnectionLost):
                smu.query("*IDN?", idempotent=True)


def test_one_instrument_alone(tmp_path):
    station = parse_station(STATION, "<small>")
    server = labrram.serve("tsp", station, port=0)
    try:
        rm = pyvisa.ResourceManager("@py")
        inst = _open(rm, server.address)
        assert "2636B" in inst.query("*IDN?")
        inst.close()
    finally:
        server.close()
