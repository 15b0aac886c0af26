"""A LeNet-5 on Fashion-MNIST, programmed tile by tile onto one simulated 128×128 ReRAM array and
run by in-array MVMs (labrram.nn.tiled).

The network (5×5 conv 6 maps, 5×5 conv 16 maps, 120, 84, 10; ReLU, 2×2 max pooling) is trained
in software on the first ``LABRRAM_BENCH_FMNIST_TRAIN`` training images (default 20,000) for
``LABRRAM_BENCH_FMNIST_EPOCHS`` epochs (default 10), then unrolled (im2col, small kernels
replicated), tiled over 128×128 array images and run on the first ``LABRRAM_BENCH_FMNIST_TEST``
test images (default 300) on the default simulated station: every array image programmed by
write-verify (the plan `labrram program` runs, one run store per image, failed devices repaired through their
partner), then every MVM of its tiles issued through the board (``:MEAS:MVM?``). Bench times
are the simulated bench's virtual clock, i.e. what the same job takes on the hardware the
station models. Needs Fashion-MNIST (``make fashion-mnist``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from labrram.nn.datasets import fashion_mnist_dir, load_fashion_mnist
from labrram.nn.tiled import forward, input_ranges, plan_network, run_in_array
from labrram.station import load_station

from .common import env_int, fashion_mnist_missing, markdown_table, table, write_page


def _s(t: float) -> str:
    return f"{t:.2f} s" if t < 120 else f"{t / 60:.1f} min"


def main() -> None:
    if fashion_mnist_missing("fmnist"):
        return
    from labrram.nn.lenet import export_layers, prepare_images, train_lenet
    from labrram.nn.train import TrainSettings

    n_train, n_test, epochs = env_int("LABRRAM_BENCH_FMNIST_TRAIN", 20000), env_int("LABRRAM_BENCH_FMNIST_TEST", 300), env_int("LABRRAM_BENCH_FMNIST_EPOCHS", 10)
    x, y = load_fashion_mnist("train", limit=n_train)
    xt_all, yt_all = load_fashion_mnist("test")
    X, Xt_all = prepare_images(x), prepare_images(xt_all)
    Xt, yt = Xt_all[:n_test], yt_all[:n_test]
    t0 = time.perf_counter()
    model, hist = train_lenet(X, y, TrainSettings(epochs=epochs, lr=2e-3, batch_size=64, seed=0))
    t_train = time.perf_counter() - t0
    layers = export_layers(model)
    sw_all = float(np.mean(forward(layers, Xt_all).argmax(1) == yt_all))
    ref = forward(layers, Xt)
    plan = plan_network(layers, (1, 28, 28))
    ranges = input_ranges(layers, X[:1000])
    with tempfile.TemporaryDirectory() as tmp, load_station().with_simulation(bench="fmnist", seed=0).connect() as st:
        t0 = time.perf_counter()
        run = run_in_array(st, plan, Xt, ranges, out_dir=Path(tmp) / "runs")
        t_run = time.perf_counter() - t0
    sw = float(np.mean(ref.argmax(1) == yt))
    hw = run.accuracy(yt)
    agree = float(np.mean(run.predictions() == ref.argmax(1)))
    rel = float(np.sqrt(np.mean((run.logits - ref) ** 2)) / np.sqrt(np.mean(ref**2)))
    where = f"first {n_test} test images; trained on the first {n_train:,} training images, {epochs} epochs ({t_train:.0f} s)"

    acc_title = f"LeNet-5 on Fashion-MNIST: software vs in-array inference ({where})"
    acc_head = ["inference", "accuracy", "agreement with software", "logits RMS error (relative)"]
    acc_rows = [
        ["software (float64)", f"{100 * sw:.1f} %", "-", "-"],
        ["in-array MVMs, one 128×128 ReRAM array reprogrammed image by image", f"{100 * hw:.1f} %", f"{100 * agree:.1f} %", f"{100 * rel:.1f} %"],
        ["software, all 10,000 test images", f"{100 * sw_all:.1f} %", "-", "-"],
    ]
    table(acc_title, acc_head, acc_rows)
    print()

    lay_title = f"Per layer: tiles, array images, devices, MVMs and bench time ({n_test} images)"
    lay_head = ["layer", "matrix (rows × outputs)", "copies per MVM", "tiles", "array images", "devices", "failed / repaired", "MVMs", "program (bench)", "MVMs (bench)", "wall"]
    lay_rows = []
    for lp in plan.plans:
        jobs = [j for j in run.jobs if j.layer == lp.index]
        n_in, n_out = lp.mapped.shape
        lay_rows.append([
            f"{lp.index} {lp.kind}", f"{n_in} × {n_out}", str(lp.replicas), str(lp.tiles), str(lp.arrays), f"{lp.devices:,}",
            f"{sum(j.failed for j in jobs)} / {sum(j.repaired for j in jobs)}", f"{sum(j.mvms for j in jobs):,}",
            _s(sum(j.program_bench_time for j in jobs)), _s(sum(j.mvm_bench_time for j in jobs)),
            _s(sum(j.program_wall_time + j.mvm_wall_time for j in jobs)),
        ])  # fmt: skip
    table(lay_title, lay_head, lay_rows)
    print()

    p_n, p_10k = run.projection(n_test), run.projection(10000)
    tot_title = "Totals and projected bench time"
    tot_head = ["quantity", "value"]
    tot_rows = [
        ["weights and biases", f"{plan.weights:,}"],
        ["tiles / array images (programming jobs per batch)", f"{plan.tiles} / {plan.arrays}"],
        ["devices programmed (differential pairs, replicated kernels included)", f"{run.devices_programmed:,}"],
        ["write-verify converged", f"{100 * run.summary()['converged_fraction']:.2f} %"],
        ["MVMs per image (alone) / in this run", f"{plan.mvms_per_image} / {run.mvms:,}"],
        ["bench time per MVM (link + 20 µs conversion)", f"{1e6 * p_n['per_mvm']:.0f} µs"],
        ["bench time to program every array image", _s(p_n["program"])],
        [f"bench time of the MVMs, {n_test} images", _s(p_n["inference"])],
        ["projected: 10,000 images (program once + MVMs)", _s(p_10k["total"])],
        [f"wall time of the in-array run ({n_test} images, run stores included)", _s(t_run)],
    ]
    table(tot_title, tot_head, tot_rows)
    notes = (
        "One array (the default simulated station's 128×128 1T1R ReRAM chip) is programmed with one array image at a time by "
        "write-verify (the plan `labrram program` runs, its own run store per image; a pair whose one device failed is repaired by retargeting "
        "its partner in a second, small job), and every MVM of that image's tiles is issued for the whole batch before the next "
        "image is programmed. Bench times are the simulated bench's virtual clock. The 10,000-image projection programs every "
        f"image once and pays the measured bench time per MVM. Fashion-MNIST from {fashion_mnist_dir()}."
    )
    write_page("docs/bench/fmnist.md", [markdown_table(acc_title, acc_head, acc_rows), markdown_table(lay_title, lay_head, lay_rows), markdown_table(tot_title, tot_head, tot_rows, notes)])
