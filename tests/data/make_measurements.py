"""Write tests/data/reram_measurements.csv: a ReRAM characterization of 64 devices of a simulated
chip (seed 11), in the tidy CSV form that ``labrram import`` reads — the worked example of
docs/calibration.md. Run from the project root: ``python tests/data/make_measurements.py``."""

from pathlib import Path

from labrram import characterize
from labrram.calibration.importer import write_tidy_csv
from labrram.calibration.reram_routine import ReRAMCharacterization
from labrram.station import load_station

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    station = load_station().with_simulation(seed=11, rows=32, cols=32)
    run = characterize(station, kind="reram", settings=ReRAMCharacterization(n_devices=64, cycles=6, read_repeats=16, relaxation_reads=64))
    write_tidy_csv(run.data, "reram", HERE / "reram_measurements.csv")
    print(f"wrote {HERE / 'reram_measurements.csv'}")
