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
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("plots need matplotlib, an optional dependency: pip install 'labrram[plot]'", name="matplotlib") from None

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


def pcm_calibration_plots(data, model: Any, out_dir: str | Path, title: str = "") -> list[Path]:
    """Drift curves per level with the fitted law, and the drift-exponent statistics vs G."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    good = np.asarray(data.converged, bool)
    t = np.asarray(data.drift_times)
    g = np.asarray(data.drift_g)
    targets = np.asarray(data.targets)
    level = np.asarray(data.level)
    paths = []

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.cm.plasma(np.linspace(0, 0.85, targets.size))
    tt = np.geomspace(t.min(), t.max(), 100)
    for lv, target in enumerate(targets):
        sel = good & (level == lv)
        if not sel.any():
            continue
        mean = g[:, sel].mean(axis=1)
        ax.loglog(t, mean * 1e6, "o", color=colors[lv], ms=4, label=f"{target * 1e6:.3g} µS")
        ax.loglog(tt, mean[0] * model.expected_drift_factor(target, tt) / model.expected_drift_factor(target, t[0]) * 1e6, "-", color=colors[lv], lw=1)
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("mean conductance (µS)")
    ax.set_title(f"{title} PCM drift, fitted law".strip())
    ax.legend(title="target", fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "pcm_drift.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    x = np.log((t + model.t0) / model.t0)
    nus = []
    for lv in range(targets.size):
        sel = good & (level == lv)
        lg = np.log(np.maximum(g[:, sel], 1e-12))
        xc = x - x.mean()
        nus.append(-(xc @ (lg - lg.mean(axis=0))) / np.sum(xc**2))
    gg = np.geomspace(targets.min(), targets.max(), 100)
    a1.semilogx(targets * 1e6, [n.mean() for n in nus], "o", label="measured")
    a1.semilogx(gg * 1e6, model.nu_mean(gg), "-", label="fit")
    a1.set_xlabel("programmed conductance (µS)")
    a1.set_ylabel("mean drift exponent ν")
    a1.legend(fontsize=8)
    a2.semilogx(targets * 1e6, [n.std() for n in nus], "o", mfc="none", color="grey", label="measured, with read noise")
    a2.semilogx(gg * 1e6, model.nu_std(gg), "-", label="fit (read noise removed)")
    a2.set_xlabel("programmed conductance (µS)")
    a2.set_ylabel("σ of ν across devices")
    a2.legend(fontsize=8)
    fig.suptitle(f"{title} drift exponent".strip())
    fig.tight_layout()
    paths.append(out_dir / "pcm_drift_exponent.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def passive_calibration_plots(data, model: Any, out_dir: str | Path, title: str = "") -> list[Path]:
    """Sensed I–V curves with the fitted sinh model (device + half-selected background), and
    the switching amplitudes of the ramps."""
    from .calibration.passive_fit import HALF_SELECT, _profile

    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v = np.asarray(data.iv_voltages)
    cur = np.asarray(data.iv_current)
    frac = HALF_SELECT[data.settings.get("scheme", "V/2")]
    _, coef = _profile(model.a, v, cur, frac)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    vv = np.linspace(v.min(), v.max(), 100)
    for k in range(min(cur.shape[1], 6)):
        line = a1.plot(v, cur[:, k] * 1e6, "o", ms=3)[0]
        a1.plot(vv, (coef[0, k] * np.sinh(model.a * vv) + coef[1, k] * np.sinh(model.a * frac * vv)) / model.a * 1e6, "-", color=line.get_color(), lw=1)
    a1.set_xlabel("read voltage (V)")
    a1.set_ylabel("sensed column current (µA)")
    a1.set_title(f"I–V, fit a = {model.a:.2f} /V")
    amps = np.asarray(data.ramp_amplitudes)
    bins = np.append(amps, amps[-1] + np.median(np.diff(amps))) - np.median(np.diff(amps)) / 2
    a2.hist(np.asarray(data.set_threshold)[np.isfinite(data.set_threshold)], bins=bins, alpha=0.6, label="SET")
    a2.hist(np.asarray(data.reset_threshold)[np.isfinite(data.reset_threshold)], bins=bins, alpha=0.6, label="RESET")
    a2.set_xlabel("switching amplitude, 1 µs pulse (V)")
    a2.set_ylabel("devices")
    a2.legend(fontsize=8)
    fig.suptitle(f"{title} passive array ({data.settings.get('scheme', 'V/2')} biasing)".strip())
    fig.tight_layout()
    path = out_dir / "passive_iv.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def calibration_plots(kind: str, data, model: Any, out_dir: str | Path, title: str = "") -> list[Path]:
    """The calibration plots of one device technology."""
    makers = {"reram": reram_calibration_plots, "pcm": pcm_calibration_plots, "passive": passive_calibration_plots}
    if kind not in makers:
        raise ValueError(f"no calibration plots for {kind!r}")
    return makers[kind](data, model, out_dir, title)


def program_report(store, out_dir: str | Path, html: bool = False) -> dict[str, Any]:
    """Plots of a programming run (target vs achieved, error histogram, pulses per device,
    convergence per batch) and its summary; with ``html``, also ``report.html`` in ``out_dir``:
    one self-contained page (:func:`html_report`) to mail to a colleague."""
    from .protocols.journal import program_outcome, read_log

    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs = store.attrs
    outcome = program_outcome(store)
    targets, achieved, converged, pulses = (outcome[k] for k in ("targets", "achieved", "converged", "pulses"))
    log = read_log(store)
    m = ~np.isnan(targets)
    err = (achieved - targets)[m]
    paths = []

    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    a = axes[0, 0]
    a.plot(targets[m] * 1e6, achieved[m] * 1e6, ".", ms=1, alpha=0.4)
    lim = [np.nanmin(targets[m]) * 1e6, np.nanmax(targets[m]) * 1e6]
    a.plot(lim, lim, "k-", lw=0.8)
    a.set_xlabel("target (µS)")
    a.set_ylabel("achieved (µS)")
    a.set_title("target vs achieved")
    a = axes[0, 1]
    a.hist(err * 1e6, bins=200, range=np.percentile(err * 1e6, [0.5, 99.5]))
    a.set_xlabel("achieved − target (µS)")
    a.set_title(f"error (RMS {np.sqrt(np.mean(err**2)) * 1e6:.2f} µS)")
    a = axes[1, 0]
    a.hist(pulses[m], bins=np.arange(0, pulses[m].max() + 2) - 0.5)
    a.set_xlabel("pulses per device")
    a.set_yscale("log")
    a.set_title(f"pulses per device (mean {pulses[m].mean():.2f})")
    a = axes[1, 1]
    if log["step"].size:
        batch = log["step"]
        kind = log["kind"]
        sets = np.bincount(batch[kind == 0].astype(int), minlength=int(batch.max()) + 1)
        active = sets[sets > 0]
        n = int(m.sum())
        a.plot(np.arange(1, active.size + 1), 100 * (1 - active / n), "o-", ms=3)
        a.set_xlabel("SET batch")
        a.set_ylabel("devices done before the batch (%)")
        a.set_title("convergence")
    protocol = attrs.get("plan", attrs.get("protocol"))
    fig.suptitle(f"{protocol} — {int(m.sum())} devices")
    fig.tight_layout()
    paths.append(out_dir / "program.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    summary = {
        "protocol": protocol,
        "status": attrs.get("status"),
        "devices": int(m.sum()),
        "converged_fraction": float(converged[m].mean()),
        "rms_error": float(np.sqrt(np.mean(err**2))),
        "pulses_per_device": float(pulses[m].mean()),
        "pulses_logged": int(log["step"].size),
        "plots": [str(p) for p in paths],
    }
    if html:
        facts = {
            "run": str(store.path),
            "chip": attrs.get("chip"),
            "device kind": attrs.get("device_kind"),
            "created": attrs.get("created"),
            "stop reason": attrs.get("reason"),
            "wall time": _seconds(attrs.get("wall_time")),
            "projected bench time": _seconds(attrs.get("bench_time")),
            "physical limit": _seconds(attrs.get("physical_limit")),
            "faults recovered": None if attrs.get("faults_recovered") is None else int(attrs["faults_recovered"]),
        }
        numbers = {
            "protocol": protocol,
            "status": summary["status"],
            "devices": f"{summary['devices']:,}",
            "converged": f"{summary['converged_fraction'] * 100:.2f} %",
            "RMS error": f"{summary['rms_error'] * 1e6:.3f} µS",
            "pulses per device": f"{summary['pulses_per_device']:.2f}",
            "pulses logged": f"{summary['pulses_logged']:,}",
            **{k: v for k, v in facts.items() if v is not None},
        }
        summary["html"] = str(html_report(out_dir / "report.html", f"{protocol} — {int(m.sum())} devices", numbers, paths))
    return summary


def _seconds(value: Any) -> str | None:
    try:
        return f"{float(value):.4g} s"
    except (TypeError, ValueError):
        return None


def html_report(path: str | Path, title: str, numbers: dict[str, Any], plots: list[Path]) -> Path:
    """One self-contained HTML page: a table of ``numbers`` and the PNG ``plots`` embedded as
    base64 data URIs — no external resource (no stylesheet, script, font or image to fetch), so
    the file reads the same mailed, archived or opened offline. Returns ``path``."""
    import base64
    import html as _html

    rows = "\n".join(f"<tr><th>{_html.escape(str(k))}</th><td>{_html.escape(str(v))}</td></tr>" for k, v in numbers.items())
    figures = "\n".join(
        f'<figure><img alt="{_html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode("ascii")}">'
        f"<figcaption>{_html.escape(p.name)}</figcaption></figure>"
        for p in plots
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 16px; }}
th {{ text-align: left; font-weight: normal; color: #555; padding: 2px 16px 2px 0; }}
td {{ font-family: ui-monospace, monospace; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #777; font-size: 12px; }}
</style>
</head>
<body>
<h1>{_html.escape(title)}</h1>
<table>
{rows}
</table>
{figures}
<p style="color:#777;font-size:12px">written by labrram report</p>
</body>
</html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def exsitu_plots(result: Any, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """Plots of an ex-situ transfer study (:class:`labrram.nn.exsitu.ExSituResult`): decision
    boundaries and predictive uncertainty, software beside hardware (2-D tasks); software
    against hardware uncertainty point by point; and, for Bayesian transfers, the wanted
    posteriors against the achieved device pairs over the achievable domain."""
    from .nn.sampled import decompose

    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    task = result.trained.task
    variant = result.settings.variant

    if result.grid is not None:
        xx, yy, _ = result.grid
        fig, axes = plt.subplots(2, 2, figsize=(10, 8.4), sharex=True, sharey=True)
        for col, (name, probs) in enumerate((("software", result.software_grid), ("hardware", result.hardware_grid))):
            d = decompose(probs)
            p1 = d["mean"][:, 1].reshape(xx.shape)
            a = axes[0, col]
            im = a.contourf(xx, yy, p1, levels=np.linspace(0, 1, 21), cmap="RdBu_r")
            a.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.2)
            a.scatter(*task.X_train.T, c=task.y_train, cmap="RdBu_r", s=6, edgecolors="k", linewidths=0.2)
            a.set_title(f"{name}: mean P(class 1)")
            a = axes[1, col]
            ue = a.contourf(xx, yy, d["predictive"].reshape(xx.shape), levels=np.linspace(0, np.log(task.n_classes), 21), cmap="magma")
            a.contour(xx, yy, p1, levels=[0.5], colors="w", linewidths=0.8)
            a.set_title(f"{name}: predictive entropy (nats)")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
        fig.colorbar(ue, ax=axes[1].tolist(), shrink=0.8)
        g = result.summary["grid"]
        copies = result.transfer.copies
        fig.suptitle(
            f"{task.name}, {variant}: software posterior vs {copies} programmed copies "
            f"(agreement {g['agreement'] * 100:.1f} %, entropy r = {g['entropy_correlation']:.3f})"
        )
        paths.append(out_dir / f"{prefix}boundaries.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

    sw = result.software_grid if result.grid is not None else result.software_test
    hw = result.hardware_grid if result.grid is not None else result.hardware_test
    ds, dh = decompose(sw), decompose(hw)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for a, key in zip(axes, ("predictive", "aleatoric", "epistemic")):
        a.plot(ds[key], dh[key], ".", ms=2, alpha=0.5)
        hi = float(max(ds[key].max(), dh[key].max(), 1e-6))
        a.plot([0, hi], [0, hi], "k-", lw=0.8)
        a.set_xlabel(f"software {key} (nats)")
        a.set_ylabel(f"hardware {key} (nats)")
        a.set_title(f"{key} uncertainty")
    where = "grid points" if result.grid is not None else "test points"
    fig.suptitle(f"{task.name}, {variant}: uncertainty per {where[:-1]}, software vs hardware")
    fig.tight_layout()
    paths.append(out_dir / f"{prefix}uncertainty.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    mapping = result.transfer.mapping
    if mapping is not None:
        dom = mapping.conditions.pairs(stride=4)
        n = len(mapping.layers)
        fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
        for a, (li, lay) in zip(axes[0], enumerate(mapping.layers)):
            a.plot(dom.mu / lay.gamma, dom.sigma / lay.gamma, ",", color="0.75", label="achievable pairs")
            a.plot(lay.mu.ravel(), lay.sigma.ravel(), "o", ms=3, mfc="none", label="trained posterior")
            a.plot(lay.achieved_mu.ravel(), lay.achieved_sigma.ravel(), "x", ms=3, label="programmed condition")
            a.set_xlabel("weight mean (weight units)")
            a.set_ylabel("weight std (weight units)")
            a.set_title(f"layer {li}: γ = {lay.gamma * 1e6:.1f} µS per unit")
            a.set_xlim(-1.1 * max(np.abs(lay.mu).max(), 1e-6) - 0.2, 1.1 * max(np.abs(lay.mu).max(), 1e-6) + 0.2)
            a.set_ylim(0, 1.3 * max(lay.sigma.max(), lay.achieved_sigma.max()))
        axes[0, 0].legend(fontsize=8, loc="upper left")
        fig.suptitle(f"{task.name}: posteriors mapped to the nearest (KL) pair of stochastic-SET conditions")
        fig.tight_layout()
        paths.append(out_dir / f"{prefix}mapping.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
