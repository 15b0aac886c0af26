"""The ex-situ Bayesian transfer study, stage by stage (Dalgaty et al. 2021, Bonnet et al. 2023).

train (software) → map and program (one stochastic SET per device) → read back → evaluate the
programmed network against the software one. Each stage is a function so the demo, the
benchmarks and the tests compose them; :func:`run_exsitu` runs them all on one crossbar.

The variants of :class:`ExSituSettings` give the ablations: ``technological=False`` trains
without the technological loss; ``bayesian=False`` trains a deterministic network and programs
it single-shot in as many copies.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.mapping import Conditions

from .datasets import Task, load_task
from .sampled import accuracy, agreement, decompose, entropy_correlation, forward
from .technological import TechnologicalLoss
from .train import TrainSettings, train_bayesian, train_deterministic
from .transfer import Transfer, TransferSettings, transfer_bayesian, transfer_deterministic

__all__ = ["ExSituSettings", "Trained", "compare", "domain_loss", "run_exsitu", "train_stage"]

Stage = Callable[[str], None]


@dataclass(frozen=True)
class ExSituSettings:
    """What the study trains and how it transfers.

    Parameters
    ----------
    task : str
        A :func:`~labrram.nn.datasets.load_task` name ("moons", "iris", "digits", ...).
    hidden : tuple of int
        Hidden layer widths.
    seed : int
        Seeds the data split, the initial weights and the software samples.
    bayesian : bool
        Bayesian network (stochastic-SET transfer) or deterministic (single-shot transfer).
    technological : bool
        Train with the technological loss (Bayesian only).
    weight_range : float
        Largest |weight| (weight units) that the devices' largest difference stands for
        during training; fixes the scale at which the technological loss sees the domain.
    beta, delta : float
        Technological-loss sharpness and width (Bonnet et al.: 10 and 0.1).
    prior_sigma : float
        Gaussian prior of the weights.
    software_samples : int
        Posterior samples of the software reference predictions.
    grid : int
        Points per axis of the decision / uncertainty maps (2-D tasks).
    train : TrainSettings
    transfer : TransferSettings
    """

    task: str = "moons"
    hidden: tuple[int, ...] = (16,)
    seed: int = 0
    bayesian: bool = True
    technological: bool = True
    weight_range: float = 4.0
    beta: float = 10.0
    delta: float = 0.1
    prior_sigma: float = 1.0
    software_samples: int = 1000
    grid: int = 60
    train: TrainSettings = field(default_factory=TrainSettings)
    transfer: TransferSettings = field(default_factory=TransferSettings)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.weight_range) and self.weight_range > 0):
            raise ValueError(f"weight_range must be a positive number, got {self.weight_range!r}")
        if self.software_samples < 1:
            raise ValueError(f"software_samples must be >= 1, got {self.software_samples}")
        if any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden!r}")

    @property
    def variant(self) -> str:
        if not self.bayesian:
            return "deterministic, single-shot"
        return "Bayesian" + ("" if self.technological else ", no technological loss")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["transfer"] = self.transfer.to_dict()
        return d


def domain_loss(model: ReRAMModel, s: ExSituSettings) -> tuple[TechnologicalLoss, float]:
    """The technological loss of a calibrated device model, and its scale (S per weight unit):
    the achievable pair domain seen at ``weight_range``."""
    conditions = Conditions.from_reram(model, s.transfer.protocol, s.transfer.grid, s.transfer.read_delay)
    pairs = conditions.pairs()
    gamma = pairs.mu_max / s.weight_range
    mu_grid, lo, hi = pairs.envelope(gamma)
    return TechnologicalLoss(mu_grid, lo, hi, beta=s.beta, delta=s.delta), gamma


@dataclass
class Trained:
    """A trained network and its software reference predictions."""

    settings: ExSituSettings
    task: Task
    network: Any
    history: list[dict]
    sizes: tuple[int, ...]
    inside: tuple[float, float] | None  # fraction of posteriors inside the domain, and within 2 delta
    wall_time: float

    def posteriors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.network.posteriors()

    def weights(self) -> list[np.ndarray]:
        """Software weight samples (Bayesian: ``software_samples`` draws) or the fixed weights."""
        s = self.settings
        if s.bayesian:
            return self.network.sample_weights(s.software_samples, seed=s.seed)
        return self.network.weights()

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return forward(self.weights(), X)


def train_stage(model: ReRAMModel, s: ExSituSettings, task: Task | None = None) -> Trained:
    """Train the network of the settings on the task (software only)."""
    t0 = time.perf_counter()
    task = task if task is not None else load_task(s.task, seed=s.seed)
    sizes = (task.n_features, *s.hidden, task.n_classes)
    ts = replace(s.train, seed=s.seed)
    inside = None
    if s.bayesian:
        tech, _ = domain_loss(model, s)
        net, hist = train_bayesian(task.X_train, task.y_train, sizes, ts, tech if s.technological else None, s.prior_sigma)
        inside = (float(tech.model_fraction_inside(net)), float(tech.model_fraction_inside(net, tol=2 * s.delta)))
    else:
        net, hist = train_deterministic(task.X_train, task.y_train, sizes, ts)
    return Trained(s, task, net, hist, sizes, inside, time.perf_counter() - t0)


def transfer_stage(xb: Crossbar, model: ReRAMModel, trained: Trained, stores=None, progress=None, attrs=None) -> Transfer:
    """Program the trained network onto the crossbar (stochastic SET or single-shot);
    ``stores(array_index)`` names each array's run store (``attrs``: their extra attributes)."""
    s = trained.settings
    if s.bayesian:
        return transfer_bayesian(xb, trained.posteriors(), model, s.transfer, stores=stores, progress=progress, attrs=attrs)
    return transfer_deterministic(xb, trained.network.weights(), model, s.transfer, stores=stores, progress=progress, attrs=attrs)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare(sw: np.ndarray, hw: np.ndarray) -> dict[str, float]:
    """How well hardware predictions ``(M, N, C)`` preserve software ones ``(M', N, C)``:
    decision agreement, correlations of the predictive, aleatoric and epistemic uncertainty,
    and the mean absolute difference of predictive entropy (nats)."""
    a, b = decompose(sw), decompose(hw)
    return {
        "agreement": agreement(sw, hw),
        "entropy_correlation": entropy_correlation(sw, hw),
        "aleatoric_correlation": _corr(a["aleatoric"], b["aleatoric"]),
        "epistemic_correlation": _corr(a["epistemic"], b["epistemic"]),
        "entropy_mae": float(np.mean(np.abs(a["predictive"] - b["predictive"]))),
        "software_entropy_mean": float(np.mean(a["predictive"])),
        "hardware_entropy_mean": float(np.mean(b["predictive"])),
    }


@dataclass
class ExSituResult:
    """Everything one study measured (numpy arrays for plots, ``summary`` for tables)."""

    settings: ExSituSettings
    trained: Trained
    transfer: Transfer
    hardware_weights: list[np.ndarray]
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    software_grid: np.ndarray | None
    hardware_grid: np.ndarray | None
    software_test: np.ndarray
    hardware_test: np.ndarray
    summary: dict[str, Any]


def evaluate(trained: Trained, transfer: Transfer, hardware_weights: list[np.ndarray], mvm: Callable[[np.ndarray], np.ndarray] | None = None, mvm_points: int = 0) -> ExSituResult:
    """Software against hardware: accuracy on the test set, agreement and uncertainty on the
    grid (2-D tasks; the test set otherwise), optionally an MVM cross-check."""
    s, task = trained.settings, trained.task
    sw_w = trained.weights()
    sw_test = forward(sw_w, task.X_test)
    hw_test = forward(hardware_weights, task.X_test)
    summary: dict[str, Any] = {
        "task": task.name,
        "variant": s.variant,
        "seed": s.seed,
        "sizes": list(trained.sizes),
        "software_accuracy": accuracy(sw_test, task.y_test),
        "hardware_accuracy": accuracy(hw_test, task.y_test),
        "posteriors_inside_domain": None if trained.inside is None else trained.inside[0],
        "posteriors_within_2delta": None if trained.inside is None else trained.inside[1],
        "train_wall_time": trained.wall_time,
        "transfer": transfer.summary(),
    }
    grid = sw_grid = hw_grid = None
    if task.n_features == 2:
        grid = task.grid(s.grid)
        sw_grid = forward(sw_w, grid[2])
        hw_grid = forward(hardware_weights, grid[2])
        summary["grid"] = compare(sw_grid, hw_grid)
    summary["test"] = compare(sw_test, hw_test)
    if mvm is not None and mvm_points > 0:
        X = task.X_test[:mvm_points]
        p_mvm = mvm(X)
        k = p_mvm.shape[0]
        p_read = forward([w[:k] for w in hardware_weights], X)
        summary["mvm_check"] = {
            "points": int(X.shape[0]),
            "copies": int(k),
            "agreement_with_read": agreement(p_mvm, p_read),
            "max_probability_difference": float(np.max(np.abs(p_mvm.mean(0) - p_read.mean(0)))),
        }
    return ExSituResult(s, trained, transfer, hardware_weights, grid, sw_grid, hw_grid, sw_test, hw_test, summary)


def run_exsitu(xb: Crossbar, model: ReRAMModel, s: ExSituSettings = ExSituSettings(), recorder=None, stage: Stage | None = None, mvm_points: int = 0, mvm_copies: int = 10) -> ExSituResult:
    """Train, transfer to ``xb``, read back and evaluate (``stage(name)`` is called as each
    stage starts)."""
    say = stage or (lambda name: None)
    say("train")
    trained = train_stage(model, s)
    say("transfer")
    tr = transfer_stage(xb, model, trained, recorder)
    say("read")
    hw = tr.read_weights(xb)
    say("evaluate")
    mvm = (lambda X: tr.mvm_probabilities(xb, X, copies=range(min(mvm_copies, tr.copies)))) if mvm_points > 0 else None
    return evaluate(trained, tr, hw, mvm, mvm_points)
