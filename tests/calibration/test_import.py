"""``labrram import``: measurements from another setup (CSV, NPZ, netCDF) -> a run store that
``labrram calibrate`` fits exactly as it fits labrram's own characterization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import labrram
from labrram.calibration.importer import SCHEMAS, MeasurementError, import_measurements, read_measurements, write_tidy_csv
from labrram.calibration.reram_routine import ReRAMCharacterization, ReRAMData
from labrram.cli import main
from labrram.station import load_station
from labrram.store import RunStore

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "reram_measurements.csv"


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """The characterization the shipped CSV was written from (tests/data/make_measurements.py)."""
    out = tmp_path_factory.mktemp("own") / "char.zarr"
    station = load_station().with_simulation(seed=11, rows=32, cols=32)
    labrram.characterize(station, kind="reram", out=out, settings=ReRAMCharacterization(n_devices=64, cycles=6, read_repeats=16, relaxation_reads=64))
    return out


def test_the_shipped_csv_is_that_characterization_and_calibrates_to_the_same_model(own_run, tmp_path, capsys):
    assert main(["import", "reram", str(SHIPPED), "--out", str(tmp_path / "imp.zarr"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["arrays"]["g_set"] == [6, 8, 64] and "rows" not in summary["arrays"]
    imported = labrram.calibrate(tmp_path / "imp.zarr", bootstrap=20)
    own = labrram.calibrate(own_run, bootstrap=20)
    assert imported.estimates.keys() == own.estimates.keys()
    for name, e in own.estimates.items():  # the same numbers: nothing lost on the way
        assert imported.estimates[name].value == pytest.approx(e.value, rel=1e-12, abs=1e-30), name
    store = RunStore.open(tmp_path / "imp.zarr")
    assert np.all(store.read("rows") == -1) and store.array_attrs("rows")["measured"] is False
    assert store.attrs["imported_from"]["format"] == "csv"


def test_npz_and_netcdf_carry_the_same_arrays(tmp_path):
    xr = pytest.importorskip("xarray")
    arrays = read_measurements(SHIPPED, "reram")
    np.savez(tmp_path / "m.npz", **arrays)
    ds = xr.Dataset({name: (SCHEMAS["reram"][name].dims, value) for name, value in arrays.items()})
    try:
        ds.to_netcdf(tmp_path / "m.nc")
    except Exception as exc:  # pragma: no cover - no netCDF writer installed
        pytest.skip(f"cannot write netCDF here: {exc}")
    for name in ("m.npz", "m.nc"):
        got = read_measurements(tmp_path / name, "reram")
        for key, value in arrays.items():
            np.testing.assert_array_equal(got[key], value)


def tidy(tmp_path: Path, edit) -> Path:
    lines = SHIPPED.read_text().splitlines()
    path = tmp_path / "edited.csv"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: [l for l in ls if not l.startswith("relax_times")], "need relax_times"),
        (lambda ls: ls + [ls[-1]], "is given 2 times"),
        (lambda ls: [ls[0]] + ls[2:], "gates misses 1 value"),
        (lambda ls: [ls[0].replace("value", "value,shelf")] + [l + "," for l in ls[1:]], "unknown column"),
        (lambda ls: ls + ["g_sett,0,,0,0,,,,1e-5"], "unknown quantity 'g_sett'"),
        (lambda ls: [l.replace(",1.4", ",abc") if l.startswith("gates") else l for l in ls], "not a number"),
        (lambda ls: [(l.rsplit(",", 1)[0] + ",nan") if l.startswith("g_set,0,,0,0") else l for l in ls], "not finite"),
        (lambda ls: [(l.rsplit(",", 1)[0] + ",-1e-5") if l.startswith("g_set,0,,0,0") else l for l in ls], "must lie in"),
        (lambda ls: [(l.rsplit(",", 1)[0] + ",50") if l.startswith("g_set,0,,0,0") else l for l in ls], "g_set (S) must lie in [0, 1]"),  # µS written as S
        (lambda ls: [(l.rsplit(",", 1)[0] + ",1e300") if l.startswith("g_set,0,,0,0") else l for l in ls], "must lie in [0, 1]"),
    ],
)
def test_bad_measurements_are_refused_naming_the_problem(tmp_path, capsys, edit, message):
    path = tidy(tmp_path, edit)
    assert main(["import", "reram", str(path), "--out", str(tmp_path / "x.zarr")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()  # nothing half-written


def test_shapes_that_disagree_and_unknown_settings_are_refused(tmp_path):
    arrays = read_measurements(SHIPPED, "reram")
    np.savez(tmp_path / "m.npz", **{**arrays, "read_repeats": arrays["read_repeats"][:, :10]})
    with pytest.raises(MeasurementError, match="read_repeats has 10 along 'device', g_set has 64"):
        read_measurements(tmp_path / "m.npz", "reram")
    with pytest.raises(MeasurementError, match="unknown setting"):
        import_measurements(SHIPPED, "reram", tmp_path / "y.zarr", {"reads_per_time": 3})
    with pytest.raises(MeasurementError, match="unknown format"):
        read_measurements(tmp_path / "m.xlsx", "reram")


@pytest.mark.parametrize("kind, settings", [("pcm", {"reads_per_time": 1}), ("passive", {"scheme": "V/3"})])
def test_every_kind_round_trips_through_the_tidy_csv(tmp_path, kind, settings):
    from labrram.calibration import KINDS

    station = load_station().with_simulation(seed=3, rows=32, cols=32)
    routine = KINDS[kind].settings
    small = {"pcm": {"n_devices": 384}, "passive": {"n_devices": 24}}[kind]
    run = labrram.characterize(station, kind=kind, out=tmp_path / "own.zarr", settings=routine(**{**small, **{k: v for k, v in settings.items() if hasattr(routine, k)}}))
    write_tidy_csv(run.data, kind, tmp_path / "m.csv")
    import_measurements(tmp_path / "m.csv", kind, tmp_path / "imp.zarr", settings)
    own, imported = labrram.calibrate(tmp_path / "own.zarr", bootstrap=10), labrram.calibrate(tmp_path / "imp.zarr", bootstrap=10)
    for name, e in own.estimates.items():
        assert imported.estimates[name].value == pytest.approx(e.value, rel=1e-9, abs=1e-30), name


def _passive_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    v = np.linspace(0.05, 0.6, 6)
    g = rng.uniform(5e-6, 20e-6, 8)
    return {
        "iv_voltages": v, "iv_current": np.outer(np.sinh(3 * v) / 3, g) + np.outer(np.sinh(1.5 * v) / 3, 30 * g),
        "ramp_amplitudes": np.array([0.9, 1.0, 1.1, 1.2]), "set_threshold": np.full(8, 1.1), "reset_threshold": np.full(8, 1.2),
        "read_repeats": g[None] * (1 + 0.01 * rng.standard_normal((4, 8))),
    }  # fmt: skip


def test_passive_column_reads_are_optional_but_go_together(tmp_path):
    rng = np.random.default_rng(0)
    arrays = _passive_arrays(rng)
    np.savez(tmp_path / "plain.npz", **arrays)
    import_measurements(tmp_path / "plain.npz", "passive", tmp_path / "plain.zarr")  # without them: fine
    fit = labrram.calibrate(tmp_path / "plain.zarr", bootstrap=10)
    assert "g_init_median" not in fit.estimates and not fit.protocol_estimates
    np.savez(tmp_path / "half.npz", **arrays, fab_cols=np.array([0, 1]))
    with pytest.raises(MeasurementError, match="fab_cols given without fab_current"):
        import_measurements(tmp_path / "half.npz", "passive", tmp_path / "half.zarr")
    with pytest.raises(MeasurementError, match="map_voltage"):
        import_measurements(tmp_path / "plain.npz", "passive", tmp_path / "mv.zarr", {"map_voltage": 2.0})
