"""`labrram demo`: the whole tour on the simulated bench, its report folder and its numbers."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from labrram.cli import main  # noqa: E402
from labrram.store import RunStore  # noqa: E402


def test_demo_runs_the_tour_and_preserves_uncertainty(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--json", "--seed", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for name in ("characterize.zarr", "calibration.json", "network.npz", "transfer.zarr", "summary.json", "boundaries.png", "uncertainty.png", "mapping.png"):
        assert (out / name).exists(), name
    [run] = summary["results"].values()
    # the acceptance numbers, on this chip
    assert run["grid"]["agreement"] >= 0.95
    assert run["grid"]["entropy_correlation"] >= 0.9
    assert abs(run["hardware_accuracy"] - run["software_accuracy"]) <= 0.02
    assert run["transfer"]["devices"] > 16_000 and run["transfer"]["pulses_per_device"] == 2.0
    assert run["mvm_check"]["agreement_with_read"] >= 0.9
    # the calibration the transfer used was fitted on this run's own characterization
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["provenance"]["data"].endswith("characterize.zarr")
    # the programming run is a normal, complete run store
    store = RunStore.open(out / "transfer.zarr")
    assert store.attrs["status"] == "complete" and store.attrs["plan"] == "stochastic-set"
    used = ~np.isnan(store.read("targets"))
    pulses = store.read("pulses")
    assert used.sum() == run["transfer"]["devices"] and np.all(pulses[used] == 2) and np.all(pulses[~used] == 0)
    # the posteriors were saved without pickle
    with np.load(out / "network.npz", allow_pickle=False) as f:
        assert {"mu0", "sigma0", "mu1", "sigma1"} <= set(f.files)


def test_demo_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("data")
    assert main(["demo", "--out", str(tmp_path / "x"), "--no-plots"]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "x" / "keep.txt").read_text() == "data"
