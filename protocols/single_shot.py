"""Open-loop programming: one RESET and one SET per device, at a gate voltage chosen from the
calibrated model — the single-shot protocol (target = the median of the chosen compliance) and
the stochastic-SET protocol (the chosen compliance's whole distribution matches a wanted
(mu, sigma), so device randomness does the sampling).

Devices are programmed in chunks (one RESET batch then one SET-and-read batch per chunk). With
a recorder, each chunk is stored as it completes; an interrupted run resumes with the next
chunk, and the devices of a chunk that was in flight are re-read: a device whose conductance
rose above the RESET level was SET and is never pulsed again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel

from .recorder import DeviceState, ProgramRecorder
from .results import Accounting, ProgramResult, Progress, TargetError, finish_result, validate_targets
from .write_verify import reachable_range



@dataclass(frozen=True)
class OneShotSettings:
    """Settings of the open-loop protocols (SI units)."""

    chunk: int = 4096
    gate_min: float = 1.2
    gate_max: float = 2.4
    set_amplitude: float = 1.8
    set_width: float = 1e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-9
    set_detect: float = 10e-6  # a device above this after a lost SET batch was SET

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def single_shot_gates(model: ReRAMModel, targets: np.ndarray, s: OneShotSettings) -> np.ndarray:
    """Gate voltage whose median conductance is the target, V."""
    return np.clip(model.transistor.gate_for(model.compliance_for(targets)), s.gate_min, s.gate_max)


def population_sigma(model: ReRAMModel, mu: np.ndarray) -> np.ndarray:
    """Spread of the conductance of many devices each SET once at median ``mu`` (c2c and d2d), S."""
    return np.sqrt(model.sigma_c2c(mu) ** 2 + (model.d2d_rel * mu) ** 2)


def kl_normal(mu: np.ndarray, sigma: np.ndarray, mu_a: np.ndarray, sigma_a: np.ndarray) -> np.ndarray:
    """KL divergence ``KL(N(mu, sigma) || N(mu_a, sigma_a))`` of the wanted normal from an
    achievable one (broadcasting; any consistent unit)."""
    return np.log(sigma_a / sigma) + (sigma**2 + (mu - mu_a) ** 2) / (2 * sigma_a**2) - 0.5


def condition_table(model: ReRAMModel, s: OneShotSettings, grid: int = 801) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-SET conditions the stochastic-SET protocol chooses from: ``grid`` gate voltages
    evenly spaced over ``[s.gate_min, s.gate_max]`` and the calibrated median and population
    spread of each; returns (gate V, mu S, sigma S)."""
    if grid < 2:
        raise ValueError(f"grid must have at least 2 gate voltages, got {grid}")
    gates = np.linspace(s.gate_min, s.gate_max, grid)
    m = model.median(model.transistor.compliance(gates))
    return gates, m, population_sigma(model, m)


def stochastic_gates(model: ReRAMModel, mu: np.ndarray, sigma: np.ndarray, s: OneShotSettings, grid: int = 801) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each wanted normal (mu, sigma), the gate whose one-SET distribution is nearest in
    KL divergence ``KL(wanted || achieved)``; returns (gate, achieved mu, achieved sigma)."""
    gates, m, sd = condition_table(model, s, grid)
    mu = np.asarray(mu, float)[:, None]
    sigma = np.asarray(sigma, float)[:, None]
    best = np.argmin(kl_normal(mu, sigma, m, sd), axis=1)
    return gates[best], m[best], sd[best]


def _program_once(
    xb: Crossbar,
    name: str,
    targets: np.ndarray,
    gates_fn,
    s: OneShotSettings,
    recorder: ProgramRecorder | None,
    resume: bool,
    progress: Progress | None,
) -> ProgramResult:
    # A batch whose exchange failed is read back at once (send_batch); the board's pulse counter
    # says whether it was delivered. A device is SET once: a SET proven delivered, or of unknown
    # fate but read above set_detect, is final; one proven undelivered (or unknown and still at
    # the RESET level) gets RESET + SET again, at most 3 rounds per chunk.
    from labrram.drivers.base import InstrumentError

    from .recovery import DELIVERED, NOT_DELIVERED, charge, check_pulse_settings, check_store_shape, load_budget, run_guard, send_batch

    acc = Accounting()
    limits = xb.limits
    check_pulse_settings(xb, f"{name} SET", s.set_amplitude, [s.gate_min, s.gate_max], s.set_width)
    check_pulse_settings(xb, f"{name} RESET", s.reset_amplitude, s.reset_gate, s.reset_width)
    if resume:
        if recorder is None:
            raise ValueError("resume needs the recorder of the interrupted run")
        check_store_shape(xb, recorder)
        st = recorder.load_state()
        targets = recorder.targets
    else:
        rows, cols = np.nonzero(~np.isnan(targets))
        n = rows.size
        st = DeviceState(rows, cols, targets[rows, cols], np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int32), gates_fn(rows, cols))
        st.phase = "program"
        if recorder is not None:
            recorder.save_state(st)
    n = st.targets.size
    e_pair = limits.pulse_energy(s.reset_amplitude, s.reset_width) + limits.pulse_energy(s.set_amplitude, s.set_width)
    with run_guard(xb, recorder):
        if resume:
            _recover(xb, recorder, st, s)
            load_budget(limits, recorder, st)
        for start in range(0, n, s.chunk):
            todo = np.arange(start, min(start + s.chunk, n))
            todo = todo[~st.converged[todo] & ~np.isnan(st.param[todo])]  # SET devices are never pulsed again
            for _ in range(3):
                out = (st.spent[todo] + 2 > limits.max_pulses_per_device) | (st.energy[todo] + e_pair > limits.max_energy_per_device)
                st.param[todo[out]] = np.nan  # no budget left for RESET + SET: given up
                todo = todo[~out]
                if todo.size == 0:
                    break
                b = send_batch(xb, recorder, st, "RESET", todo, s.reset_amplitude, s.reset_gate, s.reset_width)
                acc.pulses(np.full(todo.size, s.reset_width))
                acc.reads(st.rows[todo])
                charge(limits, st, todo, b, s.reset_amplitude, s.reset_width)
                st.pulses[todo[b.delivered]] += 1
                st.achieved[todo] = b.g
                if recorder is not None:
                    recorder.commit(st, "RESET", todo, s.reset_amplitude, s.reset_gate, s.reset_width, b.g, status=b.status)
                ready = todo[(b.status == DELIVERED) | (b.g <= s.set_detect)]  # at the RESET level
                if ready.size:
                    gate = st.param[ready]
                    b = send_batch(xb, recorder, st, "SET", ready, s.set_amplitude, gate, s.set_width)
                    acc.pulses(np.full(ready.size, s.set_width))
                    acc.reads(st.rows[ready])
                    charge(limits, st, ready, b, s.set_amplitude, s.set_width)
                    st.pulses[ready[b.delivered]] += 1
                    st.achieved[ready] = b.g
                    st.converged[ready[(b.status == DELIVERED) | ((b.status != NOT_DELIVERED) & (b.g > s.set_detect))]] = True
                    st.iteration += 1
                    if recorder is not None:
                        recorder.commit(st, "SET", ready, s.set_amplitude, gate, s.set_width, b.g, status=b.status)
                todo = todo[~st.converged[todo]]
                if todo.size == 0:
                    break
            else:
                raise InstrumentError(f"{name}: {todo.size} device(s) of chunk {start // s.chunk} not programmed after 3 rounds of failed batches")
            if progress is not None:
                progress(name, int(st.converged.sum()), n)
        return finish_result(xb.shape, name, targets, st, acc, recorder, s.to_dict())


def _recover(xb: Crossbar, recorder: ProgramRecorder, st: DeviceState, s: OneShotSettings) -> None:
    """A chunk in flight: re-read it, and ask the board's pulse counter whether its batch was
    delivered. A SET proven delivered is final; of unknown fate, a device above ``set_detect``
    was SET and is done (logged as ``SET?``), one still at the RESET level is programmed again
    (RESET + SET; RESET is harmless to repeat before the SET); a batch proven undelivered is
    simply not logged. The devices not SET are programmed by the main loop."""
    from .recovery import DELIVERED, NOT_DELIVERED, settle_pending

    settled = settle_pending(xb, recorder, st)
    if settled is None:
        return
    kind, idx, b = settled
    st.achieved[idx] = b.g
    st.pulses[idx[b.delivered]] += 1
    if kind == "SET":
        st.converged[idx[(b.status == DELIVERED) | ((b.status != NOT_DELIVERED) & (b.g > s.set_detect))]] = True
        recorder.commit(st, "SET", idx, s.set_amplitude, st.param[idx], s.set_width, b.g, status=b.status)
    else:
        recorder.commit(st, "RESET", idx, s.reset_amplitude, s.reset_gate, s.reset_width, b.g, status=b.status)


def single_shot(
    xb: Crossbar,
    targets: np.ndarray | None,
    model: ReRAMModel,
    settings: OneShotSettings = OneShotSettings(),
    recorder: ProgramRecorder | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> ProgramResult:
    """One SET per device at the compliance whose calibrated median is the target (S)."""
    s = settings
    if not resume:
        targets = validate_targets(targets, xb.shape, reachable_range(model, s.gate_min, s.gate_max))
    return _program_once(xb, "single-shot", targets, lambda r, c: single_shot_gates(model, targets[r, c], s), s, recorder, resume, progress)


def stochastic_set(
    xb: Crossbar,
    mu: np.ndarray | None,
    sigma: np.ndarray | None,
    model: ReRAMModel,
    settings: OneShotSettings = OneShotSettings(),
    recorder: ProgramRecorder | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> ProgramResult:
    """Program each device once at the condition whose calibrated distribution is nearest
    (KL divergence) to the wanted normal ``(mu, sigma)`` (S, array-shaped; NaN mu = skip).

    The result's ``targets`` are the wanted means; ``settings`` records the achieved (mu, sigma)
    of each device's condition in the returned result's ``achievable`` attribute.
    """
    s = settings
    if resume:
        return _program_once(xb, "stochastic-set", None, None, s, recorder, True, progress)
    mu = validate_targets(mu, xb.shape, reachable_range(model, s.gate_min, s.gate_max))
    sigma = np.asarray(sigma, dtype=float)
    if sigma.shape != mu.shape:
        raise TargetError(f"sigma has shape {sigma.shape}, mu has {mu.shape}")
    m = ~np.isnan(mu)
    if not np.all(np.isfinite(sigma[m])) or np.any(sigma[m] <= 0):
        raise TargetError("every sigma of a programmed device must be a positive finite conductance (S)")
    gate, amu, asd = stochastic_gates(model, mu[m], sigma[m], s)
    gate_map = np.full(mu.shape, np.nan)
    gate_map[m] = gate
    result = _program_once(xb, "stochastic-set", mu, lambda r, c: gate_map[r, c], s, recorder, False, progress)
    achievable = np.full((2,) + mu.shape, np.nan)
    achievable[0][m], achievable[1][m] = amu, asd
    result.achievable = achievable  # type: ignore[attr-defined]
    return result
