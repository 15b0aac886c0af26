"""Open-loop programming: one RESET and one SET per device, at a gate voltage chosen from the
calibrated model — the single-shot protocol (target = the median of the chosen compliance) and
the stochastic-SET protocol (the chosen compliance's whole distribution matches a wanted
(mu, sigma), so device randomness does the sampling).

Devices are programmed in chunks (one RESET batch then one SET-and-read batch per chunk), by
plans the engine runs. A device is SET once: a SET proven delivered, or of unknown fate but read
above ``set_detect``, is final; one proven undelivered (or of unknown fate and still at the
RESET level) gets RESET + SET again, at most 3 rounds per chunk in which a SET reached the chip
(a round whose SET provably never left — a run stopped just before sending it — counts only
towards a looser cap of :data:`MAX_ROUNDS`). A device whose pulse the engine refused (its
per-run budget is spent) is given up on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.drivers.base import InstrumentError

from .engine import Progress, run_plan
from .messages import DELIVERED, NOT_DELIVERED, Pulse, Report
from .plan import Plan, PlanRun, check_finite_settings, check_pulse_settings, model_from_json, model_to_json, register
from .results import DeviceState, ProgramResult, TargetError, program_result, validate_targets
from .write_verify import reachable_range


#: RESET + SET rounds per chunk at most, counting those whose SET never left
MAX_ROUNDS = 10


@dataclass(frozen=True)
class OneShotSettings:
    """Settings of the open-loop protocols, ``single-shot`` and ``stochastic-set`` (SI units).

    Attributes
    ----------
    chunk : int
        Devices per RESET and SET-and-read batch.
    gate_min, gate_max : float
        The gate (word-line) voltage range of the SETs, V.
    set_amplitude, set_width : float
        SET pulse: V, s.
    reset_amplitude, reset_gate, reset_width : float
        RESET pulse: V; its gate, V; its width, s.
    set_detect : float
        After a SET batch whose reply was lost, a device read above this was SET, S.
    """

    chunk: int = 4096
    gate_min: float = 1.2
    gate_max: float = 2.4
    set_amplitude: float = 1.8
    set_width: float = 1e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-9
    set_detect: float = 10e-6  # a device above this after a lost SET batch was SET

    def __post_init__(self) -> None:
        check_finite_settings(self)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data, as a run store records them."""
        return asdict(self)


def single_shot_gates(model: ReRAMModel, targets: np.ndarray, s: OneShotSettings) -> np.ndarray:
    """Gate voltage whose median conductance is the target, V."""
    return np.clip(model.transistor.gate_for(model.compliance_for(targets)), s.gate_min, s.gate_max)


def population_sigma(model: ReRAMModel, mu: np.ndarray) -> np.ndarray:
    """Spread of the conductance of many devices each SET once at median ``mu`` (c2c and d2d), S
    (:meth:`~labrram.devices.reram.ReRAMModel.population_sigma`)."""
    return model.population_sigma(mu)


def kl_normal(mu: np.ndarray, sigma: np.ndarray, mu_a: np.ndarray, sigma_a: np.ndarray) -> np.ndarray:
    """KL divergence ``KL(N(mu, sigma) || N(mu_a, sigma_a))`` of the wanted normal from an
    achievable one (broadcasting; any consistent unit)."""
    return np.log(sigma_a / sigma) + (sigma**2 + (mu - mu_a) ** 2) / (2 * sigma_a**2) - 0.5


def condition_table(model: ReRAMModel, s: OneShotSettings, grid: int = 801) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-SET conditions the stochastic-SET protocol chooses from: ``grid`` gate voltages
    evenly spaced over ``[s.gate_min, s.gate_max]`` and the calibrated mean and population
    spread of each (:meth:`~labrram.devices.reram.ReRAMModel.set_conditions`: the Gaussian
    laws, or the measured quantiles of an ``"empirical"`` model); returns (gate V, mu S,
    sigma S)."""
    if grid < 2:
        raise ValueError(f"grid must have at least 2 gate voltages, got {grid}")
    gates = np.linspace(s.gate_min, s.gate_max, grid)
    m, sd = model.set_conditions(gates)
    return gates, m, sd


def stochastic_gates(model: ReRAMModel, mu: np.ndarray, sigma: np.ndarray, s: OneShotSettings, grid: int = 801) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each wanted normal (mu, sigma), the gate whose one-SET distribution is nearest in
    KL divergence ``KL(wanted || achieved)``; returns (gate, achieved mu, achieved sigma)."""
    gates, m, sd = condition_table(model, s, grid)
    mu = np.asarray(mu, float)[:, None]
    sigma = np.asarray(sigma, float)[:, None]
    best = np.argmin(kl_normal(mu, sigma, m, sd), axis=1)
    return gates[best], m[best], sd[best]


class _OneShot(Plan):
    """What single-shot and stochastic SET share: RESET + SET per chunk at a gate per device."""

    def __init__(self, targets: np.ndarray, model: ReRAMModel, settings: OneShotSettings) -> None:
        self.targets = targets
        self.model = model
        self.settings = settings

    def _gates(self, targets: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, xb: Crossbar) -> None:
        s = self.settings
        check_pulse_settings(xb, f"{self.name} SET", s.set_amplitude, [s.gate_min, s.gate_max], s.set_width)
        check_pulse_settings(xb, f"{self.name} RESET", s.reset_amplitude, s.reset_gate, s.reset_width)
        self.targets = validate_targets(self.targets, xb.shape, self._reachable())

    def _reachable(self) -> tuple[float, float]:
        """The conductance range the targets must lie in, S (medians of the gate range)."""
        return reachable_range(self.model, self.settings.gate_min, self.settings.gate_max)

    def params(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "calibration": model_to_json(self.model)}

    def inputs(self) -> dict[str, Any]:
        return {"targets": (np.asarray(self.targets, dtype=float), ("row", "col"), "S")}

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s = self.settings
        st = DeviceState.start(self.targets, 0.0)
        st.param = self._gates(st.targets)
        n = st.targets.size
        for start in range(0, n, s.chunk):
            todo = np.arange(start, min(start + s.chunk, n))
            tried = rounds = 0
            while tried < 3 and rounds < MAX_ROUNDS:
                rounds += 1
                r = yield Pulse("RESET", st.rows[todo], st.cols[todo], s.reset_amplitude, s.reset_gate, s.reset_width)
                st.pulses[todo[r.delivered]] += 1
                st.param[todo[r.refused]] = np.nan  # no budget left: given up
                st.achieved[todo] = np.where(r.refused, st.achieved[todo], r.g)
                ready = todo[(r.status == DELIVERED) | ((r.status != NOT_DELIVERED) & ~r.refused & (r.g <= s.set_detect))]  # at the RESET level
                if ready.size:
                    r = yield Pulse("SET", st.rows[ready], st.cols[ready], s.set_amplitude, st.param[ready], s.set_width)
                    st.pulses[ready[r.delivered]] += 1
                    st.param[ready[r.refused]] = np.nan
                    st.achieved[ready] = np.where(r.refused, st.achieved[ready], r.g)
                    st.converged[ready[(r.status == DELIVERED) | ((r.status != NOT_DELIVERED) & ~r.refused & (r.g > s.set_detect))]] = True
                    st.iteration += 1
                    tried += bool(np.any(r.status != NOT_DELIVERED))
                todo = todo[~st.converged[todo] & ~np.isnan(st.param[todo])]
                if todo.size == 0:
                    break
            if todo.size:
                raise InstrumentError(f"{self.name}: {todo.size} device(s) of chunk {start // s.chunk} not programmed after {rounds} rounds of failed batches ({tried} with SET pulses that reached the chip)")
            yield Report(self.name, int(st.converged.sum()), n)
        result = program_result(shape, self.name, self.targets, st, s.to_dict())
        return result


@register
class SingleShot(_OneShot):
    """One SET per device at the compliance whose calibrated median is the target (S)."""

    name = "single-shot"

    def _gates(self, targets: np.ndarray) -> np.ndarray:
        return single_shot_gates(self.model, targets, self.settings)

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "SingleShot":
        return cls(store.read("targets"), model_from_json(params["calibration"]), OneShotSettings(**params["settings"]))


@register
class StochasticSet(_OneShot):
    """Program each device once at the condition whose calibrated distribution is nearest
    (KL divergence) to the wanted normal ``(mu, sigma)`` (S, array-shaped; NaN mu = skip).

    The result's ``targets`` are the wanted means; its ``achievable`` attribute holds the
    (mu, sigma) of each device's condition, (2, rows, cols).
    """

    name = "stochastic-set"

    def __init__(self, mu: np.ndarray, sigma: np.ndarray | None, model: ReRAMModel, settings: OneShotSettings = OneShotSettings()) -> None:
        super().__init__(mu, model, settings)
        self.sigma = sigma

    def _reachable(self) -> tuple[float, float]:
        """The wanted means must lie between the smallest and largest condition mean, S."""
        _, m, _ = condition_table(self.model, self.settings)
        return float(m.min()), float(m.max())

    def check(self, xb: Crossbar) -> None:
        super().check(xb)
        mu = self.targets
        m = ~np.isnan(mu)
        if self.sigma is None:
            self.sigma = population_sigma(self.model, np.where(m, mu, 1e-6))
        sigma = np.asarray(self.sigma, dtype=float)
        if sigma.shape != mu.shape:
            raise TargetError(f"sigma has shape {sigma.shape}, mu has {mu.shape}")
        if not np.all(np.isfinite(sigma[m])) or np.any(sigma[m] <= 0):
            raise TargetError("every sigma of a programmed device must be a positive finite conductance (S)")
        self.sigma = sigma

    def inputs(self) -> dict[str, Any]:
        return {**super().inputs(), "sigma": (np.asarray(self.sigma, dtype=float), ("row", "col"), "S")}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "StochasticSet":
        return cls(store.read("targets"), store.read("sigma"), model_from_json(params["calibration"]), OneShotSettings(**params["settings"]))

    def _gates(self, targets: np.ndarray) -> np.ndarray:
        m = ~np.isnan(self.targets)
        gate, self._amu, self._asd = stochastic_gates(self.model, targets, np.asarray(self.sigma)[m], self.settings)
        return gate

    def run(self, shape: tuple[int, int]) -> PlanRun:
        result = yield from super().run(shape)
        m = ~np.isnan(self.targets)
        achievable = np.full((2,) + self.targets.shape, np.nan)
        achievable[0][m], achievable[1][m] = self._amu, self._asd
        result.achievable = achievable  # type: ignore[attr-defined]
        return result


def single_shot(
    xb: Crossbar,
    targets: np.ndarray,
    model: ReRAMModel,
    settings: OneShotSettings = OneShotSettings(),
    out: str | Path | None = None,
    progress: Progress | None = None,
    timer: Any = None,
) -> ProgramResult:
    """Run :class:`SingleShot` on ``xb`` through the engine (with ``out``, a run store: recorded and resumable)."""
    return run_plan(xb, SingleShot(targets, model, settings), out, timer=timer, progress=progress)


def stochastic_set(
    xb: Crossbar,
    mu: np.ndarray,
    sigma: np.ndarray | None,
    model: ReRAMModel,
    settings: OneShotSettings = OneShotSettings(),
    out: str | Path | None = None,
    progress: Progress | None = None,
    timer: Any = None,
) -> ProgramResult:
    """Run :class:`StochasticSet` on ``xb`` through the engine (``sigma`` None: the calibrated
    population spread of each mean)."""
    return run_plan(xb, StochasticSet(mu, sigma, model, settings), out, timer=timer, progress=progress)
