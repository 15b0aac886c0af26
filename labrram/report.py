"""Plots (matplotlib, PNG) and summary tables of labrram runs and calibrations.

matplotlib is imported lazily with the non-interactive Agg backend, so reports render on a
machine without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .calibration.reram_routine import ReRAMData


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reram_calibration_plots(data: ReRAMData, model: Any, out_dir: str | Path, title: str = "") -> list[Path]:
    """Histograms per compliance level with the fitted distributions, median and sigma versus
    compliance current with the fitted laws, and the relaxation curve. Returns the PNG paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    g_set = np.asarray(data.g_set)
    good = np.median(np.asarray(data.g_reset), axis=(0, 1)) < 30e-6
    good &= np.median(g_set[:, -1, :], axis=0) > 10e-6
    gs = g_set[:, :, good]
    icc = model.transistor.compliance(np.asarray(data.gates))

    # 1. histograms with fitted normals (d2d and c2c combined, as a population sees them)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, icc.size))
    for lv in range(icc.size):
        g = gs[:, lv, :].ravel() * 1e6
        ax.hist(g, bins=40, density=True, alpha=0.45, color=colors[lv], label=f"{icc[lv] * 1e6:.0f} µA")
        mu = model.median(icc[lv])
        sd = np.sqrt(model.sigma_c2c(mu) ** 2 + (model.d2d_rel * mu) ** 2 + (model.read_noise_rel * mu) ** 2)
        x = np.linspace(max(g.min(), 0), g.max(), 200)
        ax.plot(x, np.exp(-0.5 * ((x - mu * 1e6) / (sd * 1e6)) ** 2) / (sd * 1e6 * np.sqrt(2 * np.pi)), color=colors[lv], lw=1.5)
    ax.set_xlabel("conductance after SET (µS)")
    ax.set_ylabel("density")
    ax.set_title(f"{title} conductance per compliance level, fitted model".strip())
    ax.legend(title="I_cc", fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(out_dir / "reram_histograms.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # 2. median and cycle-to-cycle sigma vs compliance
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    med = np.median(gs, axis=(0, 2))
    within = np.sqrt(np.mean(np.var(gs, axis=0, ddof=1), axis=1))
    ii = np.linspace(icc.min(), icc.max(), 100)
    a1.loglog(icc * 1e6, med * 1e6, "o", label="measured median")
    a1.loglog(ii * 1e6, model.median(ii) * 1e6, "-", label=f"fit a·(I/100µA)^b, b={model.b:.3f}")
    a1.set_xlabel("compliance current (µA)")
    a1.set_ylabel("median conductance (µS)")
    a1.legend(fontsize=8)
    corrected = np.sqrt(np.maximum(within**2 - np.mean((model.read_noise_rel * gs) ** 2, axis=(0, 2)), 0.0))
    a2.loglog(med * 1e6, within * 1e6, "o", mfc="none", color="grey", label="measured, with read noise")
    a2.loglog(med * 1e6, corrected * 1e6, "o", label="measured, read noise removed")
    mm = np.linspace(med.min(), med.max(), 100)
    a2.loglog(mm * 1e6, model.sigma_c2c(mm) * 1e6, "-", label=f"fit c·(G/100µS)^d, d={model.d:.3f}")
    a2.set_xlabel("median conductance (µS)")
    a2.set_ylabel("cycle-to-cycle σ (µS)")
    a2.legend(fontsize=8)
    fig.suptitle(f"{title} SET laws".strip())
    fig.tight_layout()
    paths.append(out_dir / "reram_laws.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # 3. relaxation
    fig, ax = plt.subplots(figsize=(5, 3.5))
    t = np.asarray(data.relax_times)
    drift = (np.asarray(data.relax_g)[:, good] - np.asarray(data.relax_g)[:1, good]) * 1e6
    ax.errorbar(t, drift.mean(axis=1), yerr=drift.std(axis=1), fmt="o", label="measured (mean ± sd)")
    tt = np.logspace(np.log10(t.min()), np.log10(t.max()), 100)
    ax.plot(tt, model.relaxation(tt, 0.0) * 1e6 - model.relaxation(t.min(), 0.0) * 1e6, "-", label="fit")
    ax.set_xscale("log")
    ax.set_xlabel("time after SET (s)")
    ax.set_ylabel("ΔG (µS)")
    ax.set_title(f"{title} relaxation".strip())
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "reram_relaxation.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
