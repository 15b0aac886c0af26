"""Binary record layouts of the crossbar board protocol (docs/board-protocol.md), shared by the
board driver and the board emulator. All little-endian."""

import numpy as np

#: one cell address: row, column
CELL_RECORD = np.dtype([("row", "<u2"), ("col", "<u2")])
#: one pulse: cell, amplitude (V), gate / word-line voltage (V), width (s)
PULSE_RECORD = np.dtype([("row", "<u2"), ("col", "<u2"), ("amplitude", "<f4"), ("gate", "<f4"), ("width", "<f4")])
#: bulk readings (currents, A) and row voltages (V)
VALUE = np.dtype("<f4")
