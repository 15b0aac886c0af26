"""Mapping-aware biased training (Diware et al., AICAS 2023) against conventional training.

Two studies; ``LABRRAM_BENCH_DIWARE`` = ``lenet`` / ``digits`` / ``all`` (default) chooses.

**LeNet-5 on Fashion-MNIST** (:func:`lenet_main`, docs/bench/diware_lenet.md; implemented in
:mod:`benchmarks.diware_lenet`).

**digits** (8×8, scikit-learn bundled), 64-16-10 ReLU network, 8-bit weights as four 2-bit slices
(8 devices per weight, 9,680 devices: one 128×128 array). The networks are trained once; for
every chip seed each one is programmed on the same array in turn (RESET of the level-0 devices,
single-shot SET of the others, from the shipped calibration), read back in one batched read,
and evaluated at several variation multipliers (each device's measured deviation from its
target scaled by the multiplier). ``LABRRAM_BENCH_SEEDS`` (default 3) sets the number of chips.
"""

from __future__ import annotations

import os
import time

import numpy as np

from labrram import sim
from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.nn.datasets import load_task
from labrram.nn.mapping_aware import (
    DiwareSettings,
    conventional,
    map_network,
    program_network,
    software_accuracy,
    train_biased,
    train_conventional,
    weights_from,
)
from labrram.station import load_station

from .common import table

MULTIPLIERS = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)


def study(seeds: list[int], settings: DiwareSettings = DiwareSettings(), multipliers=MULTIPLIERS) -> dict:
    """Software and hardware accuracy of every training variant, per chip and multiplier. Each
    chip is characterized and calibrated on its own first; the state ranking, the biased
    training and the programming use that chip's calibration."""
    task = load_task("digits", seed=0)
    sizes = (task.n_features, settings.hidden, task.n_classes)
    base = train_conventional(task.X_train, task.y_train, sizes, settings.pretrain)
    out: dict = {}
    for seed in seeds:
        sim.configure_bench("diware", seed=seed)
        with load_station().with_simulation(bench="diware", seed=seed).connect() as c:
            model = ReRAMFit(seed=seed).fit(characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=seed))).model_
            mags = settings.magnitudes(model)
            nets = {"conventional": conventional(base)}
            for frac in (1.0, 0.5):
                nets[f"biased, m = {frac:.0%}"] = train_biased(
                    task.X_train, task.y_train, base, mags, frac, settings.finetune_epochs, settings.finetune_lr
                )
            mapping = settings.mapping(model)
            for name, net in nets.items():
                mapped = map_network(net, mapping)
                entry = out.setdefault(name, {"sw": [], "hw": {a: [] for a in multipliers}})
                entry["sw"].append(software_accuracy([l.target_weights for l in mapped], task.X_test, task.y_test))
                prog = program_network(c.crossbar, mapped, model, "single-shot")
                g = c.crossbar.read()
                for a in multipliers:
                    entry["hw"][a].append(software_accuracy(weights_from(g, prog, a), task.X_test, task.y_test))
            out["_magnitudes"] = mags
    for entry in out.values():
        if isinstance(entry, dict) and "sw" in entry:
            entry["sw"] = float(np.mean(entry["sw"]))
    return out


def main() -> None:
    which = os.environ.get("LABRRAM_BENCH_DIWARE", "all")
    if which not in ("all", "lenet", "digits"):
        raise SystemExit(f"LABRRAM_BENCH_DIWARE must be all, lenet or digits, got {which!r}")
    if which in ("all", "digits"):
        digits_main()
    if which in ("all", "lenet"):
        from .diware_lenet import lenet_main

        lenet_main()


def ranking_table(settings: DiwareSettings = DiwareSettings()) -> tuple[str, list[str], list[list[str]]]:
    """The state ranking on the shipped calibration: each (slice, level) state's error current
    ``σ_level · significance`` (µS, in read-voltage units), the unused states marked and the
    dropped ones in bold, the level spreads in the title."""
    from labrram.calibration.files import default_calibration
    from labrram.nn.mapping_aware import robust_mask, usable_states

    model = default_calibration("reram").model
    ranking = settings.ranking(model)
    usable = usable_states(settings.bits, settings.slice_bits)
    robust = robust_mask(ranking, settings.n_drop, usable)
    cur = ranking.error_current / ranking.v_read * 1e6  # σ · significance, µS
    rows = []
    for k, w in enumerate(ranking.significance):
        cells = []
        for l in range(cur.shape[1]):
            v = f"{cur[k, l]:.3g}"
            cells.append("(unused)" if not usable[k, l] else v if robust[k, l] else f"**{v}** (dropped)")
        rows.append([f"{k} (×{w:g})"] + cells)
    sig = ", ".join(f"{x * 1e6:.2f}" for x in ranking.sigma)
    title = (f"state ranking on the shipped calibration: σ by level {sig} µS; error current σ · significance "
             f"(µS · V_read) of every slice and level, n_drop = {settings.n_drop}")  # fmt: skip
    return title, ["slice (significance)"] + [f"level {l}" for l in range(cur.shape[1])], rows


def digits_main() -> None:
    """The digits study (docs/bench/diware.md; the state ranking also in docs/methods/diware.md)."""
    from .common import PRINTED, markdown_table, write_page, write_section

    start = len(PRINTED)
    rank = ranking_table()
    table(*rank)
    print()
    n = int(os.environ.get("LABRRAM_BENCH_SEEDS", "3"))
    seeds = list(range(n))
    t0 = time.perf_counter()
    res = study(seeds)
    mags = res.pop("_magnitudes")
    conv = res["conventional"]["hw"]
    rows = []
    for a in MULTIPLIERS:
        for name, r in res.items():
            hw = np.asarray(r["hw"][a]) * 100
            ratio = np.mean(r["hw"][a]) / np.mean(conv[a])
            rows.append([f"×{a:g}", name, f"{100 * r['sw']:.1f}", f"{hw.mean():.1f} [{hw.min():.1f}, {hw.max():.1f}]", f"{ratio:.2f}×"])
    table(
        f"digits 64-16-10, 8-bit weights in four 2-bit slices, single-shot on {n} chip(s) (mean [min, max]); "
        f"constrained codes |q| ∈ {{0 … {mags[-1]}}} ({mags.size} values)",
        ["variation", "training", "sw acc %", "hw acc %", "hw vs conventional"],
        rows,
    )
    print(f"(total {time.perf_counter() - t0:.0f} s)")
    write_page("docs/bench/diware.md", [markdown_table(t, h, r) for t, h, r in PRINTED[start:]])
    write_section("docs/methods/diware.md", "diware digits", [markdown_table(*rank)])


if __name__ == "__main__":
    main()
