"""The one-command tour: characterize → calibrate → train → transfer → evaluate → report.

On the default (simulated) station: characterize 256 ReRAM devices, fit the device model,
train a Bayesian network on half moons with the technological loss of that calibration,
program it in one step onto the whole 128×128 array (one stochastic SET per device, as many
copies of the network as fit), read it back through the instruments, and compare the
programmed network with the software one. Everything lands in one report folder::

    characterize.zarr   raw characterization data          calibration.json   fitted model
    network.npz         trained posteriors (mu, sigma)     transfer.zarr      programming run
    boundaries.png      decision and uncertainty maps      uncertainty.png    per-point scatter
    mapping.png         posteriors vs programmed pairs     calibration_*.png  calibration plots
    summary.json        every number below

``ablations=True`` repeats train-transfer-evaluate without the technological loss and with a
deterministic network programmed single-shot, on the same chip.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["DEMO_STAGES", "run_demo"]

DEMO_STAGES = ("characterize", "calibrate", "train", "transfer", "read", "evaluate", "report")

Stage = Callable[[str], None]


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def run_demo(
    out: str | Path,
    station_path: str | Path | None = None,
    seed: int = 0,
    task: str = "moons",
    ablations: bool = False,
    plots: bool = True,
    stage: Stage | None = None,
) -> dict[str, Any]:
    """Run the tour into ``out`` (a new or empty folder) and return its summary.

    ``station_path`` None uses the default simulated station (its chip seeded with ``seed``);
    ``stage(name)`` is called as each of :data:`DEMO_STAGES` starts.
    """
    from .api import characterize
    from .calibration import ReRAMCharacterization, ReRAMFit
    from .calibration.files import Calibration, provenance
    from .nn.exsitu import ExSituSettings, evaluate, train_stage, transfer_stage
    from .station import load_station

    say = stage or (lambda name: None)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose another --out or remove it")
    station = load_station(station_path)
    if station.simulated:
        station = station.with_simulation(kind="reram", seed=seed)
    settings = ExSituSettings(task=task, seed=seed)
    t_start = time.perf_counter()
    walls: dict[str, float] = {}
    summary: dict[str, Any] = {"station": station.name, "settings": settings.to_dict()}
    out.mkdir(parents=True, exist_ok=True)

    def timed(name: str):
        say(name)
        walls[name] = walls.get(name, 0.0) - time.perf_counter()

    def done(name: str) -> None:
        walls[name] += time.perf_counter()

    with station.connect() as connected:
        xb = connected.crossbar
        chip = connected.instruments[station.crossbar["board"]].idn
        summary["chip"] = chip
        bench0 = connected.bench_time()

        timed("characterize")
        cs = ReRAMCharacterization(seed=seed)
        data = characterize(connected, kind="reram", settings=cs, out=out / "characterize.zarr").data
        done("characterize")

        timed("calibrate")
        fit = ReRAMFit(seed=seed).fit(data)
        cal = Calibration("reram", fit.model_, fit.estimates_, fit.gof_, fit.n_devices_, provenance(chip, station.to_dict(), cs.to_dict(), str(out / "characterize.zarr")))
        cal.save(out / "calibration.json")
        model = cal.model
        done("calibrate")

        runs: dict[str, Any] = {}
        variants = [settings]
        if ablations:
            variants += [replace(settings, technological=False), replace(settings, bayesian=False)]
        for k, s in enumerate(variants):
            tag = "" if k == 0 else ("notech-" if s.bayesian else "deterministic-")
            timed("train")
            trained = train_stage(model, s)
            done("train")
            if s.bayesian:
                np.savez(out / f"{tag}network.npz", **{f"{kind}{i}": a for i, (mu, sd) in enumerate(trained.posteriors()) for kind, a in (("mu", mu), ("sigma", sd))})
            else:
                np.savez(out / f"{tag}network.npz", **{f"w{i}": w for i, w in enumerate(trained.network.weights())})

            def stores(i: int, tag: str = tag) -> Path:
                return out / f"{tag}transfer{'' if i == 0 else i}.zarr"

            timed("transfer")
            before = connected.bench_time()
            tr = transfer_stage(xb, model, trained, stores, attrs={"station": station.to_dict(), "calibration": cal.provenance, "network": s.to_dict()})
            after = connected.bench_time()
            done("transfer")
            timed("read")
            hw = tr.read_weights(xb)
            done("read")
            timed("evaluate")
            mvm = (lambda X, tr=tr: tr.mvm_probabilities(xb, X, copies=range(min(5, tr.copies)))) if k == 0 else None
            result = evaluate(trained, tr, hw, mvm, mvm_points=20 if k == 0 else 0)
            if before is not None and after is not None:
                result.summary["transfer"]["bench_time"] = after["now"] - before["now"]
            done("evaluate")
            if plots:
                timed("report")
                from .report import exsitu_plots

                result.summary["plots"] = [str(p) for p in exsitu_plots(result, out, prefix=tag)]
                done("report")
            runs[s.variant] = result.summary
        if plots:
            from .report import calibration_plots

            say("report")
            summary["calibration_plots"] = [str(p) for p in calibration_plots("reram", data, model, out, title=str(chip).split(",")[2] if chip.count(",") >= 2 else "")]
        bench1 = connected.bench_time()
    summary["calibration"] = {k: e.to_dict() for k, e in fit.estimates_.items()}
    summary["results"] = runs
    summary["wall_time"] = time.perf_counter() - t_start
    summary["stage_wall_times"] = walls
    if bench0 is not None and bench1 is not None:
        summary["projected_bench_time"] = bench1["now"] - bench0["now"]
    summary["out"] = str(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    return summary
