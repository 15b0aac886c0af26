"""Calibrate simulated chips and pair every stored estimate with the chip's truth.

Shared by the accuracy tests and the interval-coverage study (tests/calibration/test_coverage.py).
The truth of a device-model parameter is the chip's hidden model (``reveal_truth``); the truth
of the PCM ladder's spread is that of the chip's device population: the same ladder run on
other devices of the same chip, their true programmed conductances read from its state. It is
itself measured, on ``POPULATION_REPEATS`` x 768 devices: with 3 repeats its own sampling
noise (a third of the estimate's variance) took the coverage of an honest interval from 95 % to
about 91 %; with 16 it costs 95 % -> 94 %.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import stats

from labrram.calibration import PCMCharacterization, PCMFit, ReRAMCharacterization, ReRAMFit, characterize_pcm, characterize_reram
from labrram.calibration.pcm_fit import level_label
from labrram.station import load_station

RERAM_FIELDS = ("a", "b", "c", "d", "d2d_rel", "hrs_median", "hrs_sigma_log", "read_noise_rel", "relax_mean", "relax_sigma", "p_stuck_lrs", "p_stuck_hrs")
#: ladder runs pooled into the population truth of the PCM ladder's spread
POPULATION_REPEATS = 16
PCM_LAWS = ("nu_mu_slope", "nu_mu_offset", "nu_mu_min", "nu_sigma_slope", "nu_sigma_offset", "nu_sigma_min", "q_s_coeff", "q_s_exp")


def reram_truth(truth) -> dict[str, float]:
    out = {name: float(getattr(truth, name)) for name in RERAM_FIELDS}
    out.update(k=truth.transistor.k, v_th=truth.transistor.v_th)
    return out


def characterize_pcm_chip(seed: int, settings: PCMCharacterization = PCMCharacterization()):
    """(data, truth model, true programmed conductance of each characterized device)."""
    with load_station().with_simulation(bench=f"pcmchip{seed}", seed=seed, kind="pcm").connect() as st:
        data = characterize_pcm(st.crossbar, st.timer, settings)
        g_prog = st.bench.chip._g_prog[data.rows, data.cols].copy()
        return data, st.bench.chip.reveal_truth(), g_prog


def ladder_population(seed: int, settings: PCMCharacterization = PCMCharacterization(), repeats: int = POPULATION_REPEATS) -> tuple[np.ndarray, np.ndarray]:
    """True programmed conductance (S) and level of the devices the characterization ladder
    programs on chip ``seed``: the same ladder (same batch size: its timing sets the spread) run
    ``repeats`` times on other devices of the same chip (each run starts with a full RESET of
    its devices; the chip's truth is unchanged), the converged devices pooled."""
    g_all, lv_all = [], []
    for k in range(repeats):
        other = replace(settings, seed=settings.seed + 1000 + k, drift_times=settings.drift_times[:3])
        data, _, g_prog = characterize_pcm_chip(seed, other)
        ok = np.asarray(data.converged, bool)
        g_all.append(g_prog[ok])
        lv_all.append(np.asarray(data.level)[ok])
    return np.concatenate(g_all), np.concatenate(lv_all)


def ladder_population_spread(seed: int, settings: PCMCharacterization = PCMCharacterization(), repeats: int = POPULATION_REPEATS) -> np.ndarray:
    """True spread (S) of the programmed conductance the characterization ladder leaves at each
    level on chip ``seed`` (:func:`ladder_population`)."""
    g, lv = ladder_population(seed, settings, repeats)
    return np.array([g[lv == i].std(ddof=1) for i in range(len(settings.targets))])


def pcm_record(seed: int, n_boot: int = 200) -> dict[str, tuple[float, float, float, float]]:
    """Every estimate a PCM calibration file stores: name -> (value, low, high, truth).

    ``nu_mean@<level>`` is the mean drift exponent of the devices the ladder programs to that
    level: its truth is the chip's mean-exponent law averaged over the ladder's population at
    the level (their true programmed conductances), not the law at the target itself (the
    ladder leaves 2 µS devices ~3 % low, where the law is ~0.0008 higher)."""
    data, truth, _ = characterize_pcm_chip(seed)
    fit = PCMFit(n_boot=n_boot).fit(data)
    g, lv = ladder_population(seed)
    truths = {name: float(getattr(truth, name)) for name in PCM_LAWS}
    for i, t in enumerate(data.targets):
        truths[f"nu_mean@{level_label(t)}"] = float(np.mean(truth.nu_mean(g[lv == i])))
        truths[f"ladder_spread@{level_label(t)}"] = float(g[lv == i].std(ddof=1))
    est = {**fit.estimates_, **fit.protocol_estimates_}
    return {name: (e.value, e.low, e.high, truths[name]) for name, e in est.items()}


def characterize_reram_chip(seed: int, settings: ReRAMCharacterization = ReRAMCharacterization()):
    with load_station().with_simulation(bench=f"reramchip{seed}", seed=seed).connect() as st:
        data = characterize_reram(st.crossbar, st.timer, settings)
        return data, st.bench.chip.reveal_truth()


def reram_record(seed: int, n_boot: int = 200) -> dict[str, tuple[float, float, float, float]]:
    """Every estimate a ReRAM calibration file stores: name -> (value, low, high, truth)."""
    data, truth = characterize_reram_chip(seed)
    fit = ReRAMFit(n_boot=n_boot).fit(data)
    truths = reram_truth(truth)
    return {name: (e.value, e.low, e.high, truths[name]) for name, e in fit.estimates_.items()}


def pcm_model_data(model, n_devices: int, seed: int, correlation: str = "independent", settings: PCMCharacterization = PCMCharacterization()):
    """PCM characterization data drawn straight from the statistical model (no bench, no ladder).

    Every device: ``g_prog = PCMModel.sample_program(target)``, ``nu = sample_nu(g_prog)``, reads
    ``drift(g_prog, t, nu)`` with 1/f read noise of ``read_noise_sigma``: drawn independently at
    every read (``"independent"``, as aihwkit's ``PCMLikeNoiseModel``) or from the device model's
    1/f process (``"1/f"``). Returns (data, true g_prog of each device).
    """
    from labrram.calibration.pcm_drift import read_noise_covariance
    from labrram.calibration.pcm_routine import PCMData, assign_levels

    rng = np.random.default_rng(seed)
    targets = np.asarray(settings.targets, float)
    t = np.asarray(settings.drift_times, float)
    level = assign_levels(targets, n_devices, seed)
    g_prog = model.sample_program(targets[level], rng)
    nu = model.sample_nu(g_prog, rng)
    g = model.drift(g_prog, t[:, None], nu)
    if correlation == "independent":
        g = g + model.read_noise_sigma(g, t[:, None], g_prog) * rng.standard_normal(g.shape)
    else:
        e = np.linalg.cholesky(read_noise_covariance(model, t, "1/f")) @ rng.standard_normal((t.size, n_devices))
        g = g * (1.0 + model.q_s(g_prog) * e)
    g = np.maximum(g, 0.0)
    idx = np.arange(n_devices)
    empty = np.zeros((0, n_devices))
    data = PCMData(idx // 128, idx % 128, level, targets, np.ones(n_devices, bool), np.zeros(n_devices), empty, empty, t, g, np.zeros((2, n_devices)), settings=settings.to_dict())
    return data, g_prog


# --- interval coverage over many chips (tests/calibration/test_coverage.py, benchmarks/bench_coverage.py)
#: the range every stored 95 % interval's coverage must lie in
LOW, HIGH = 0.91, 0.99
#: family-wise error rate of the per-interval tests (Bonferroni over the intervals of a file)
ALPHA = 0.05
#: the coverage pooled over every interval of a file must lie here (at 100 chips its standard
#: deviation is 0.4 points if the intervals miss independently, 2.2 if those of one chip missed
#: together)
POOLED = (0.92, 0.98)


def coverage(records: list[dict]) -> dict[str, float]:
    out = {}
    for name in records[0]:
        v = np.array([r[name] for r in records])  # value, low, high, truth
        out[name] = float(np.mean((v[:, 1] <= v[:, 3]) & (v[:, 3] <= v[:, 2])))
    return out


def refuted(cov: dict[str, float], n: int, alpha: float = ALPHA) -> dict[str, str]:
    """The intervals whose coverage over ``n`` chips refutes a true coverage within
    [:data:`LOW`, :data:`HIGH`]: an exact one-sided binomial test at ``alpha`` divided by the
    number of intervals. An observed coverage is a binomial draw: at 100 chips an exact 95 %
    interval lands outside [0.91, 0.99] with 3.4 % probability, so one of 34 would with ~69 %;
    this asks instead whether the chips show the coverage to be outside."""
    level = alpha / max(len(cov), 1)
    out = {}
    for name, c in cov.items():
        k = round(c * n)
        if stats.binom.cdf(k, n, LOW) < level:
            out[name] = f"{k}/{n} covered: below {LOW} (p = {stats.binom.cdf(k, n, LOW):.1e})"
        elif stats.binom.sf(k - 1, n, HIGH) < level:
            out[name] = f"{k}/{n} covered: above {HIGH} (p = {stats.binom.sf(k - 1, n, HIGH):.1e})"
    return out
