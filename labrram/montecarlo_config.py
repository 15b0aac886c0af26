"""Study files: a Monte Carlo study described in TOML, read with :mod:`tomllib` and checked.

::

    [study]
    trial = "labrram.montecarlo:example_trial"   # module:function (required)
    trials = 200                                 # number of trials (required)
    seed = 0                                     # study seed (default 0)
    chunk = 10                                   # trials per task and per store chunk (optional)
    backend = "dask"                             # dask (default) | process | serial
    scheduler = "tcp://10.0.0.5:8786"            # an existing Dask cluster (optional)
    workers = 2                                  # size of the local cluster or pool (optional)
    modules = ["mylab.trials"]                   # modules whose trial functions the file may call

    [params]                                     # keyword arguments of every trial (JSON-able)
    size = 3

Every problem is reported as one :class:`~labrram.montecarlo.StudyError` naming the file and the
key. Nothing in the file is evaluated or unpickled: the trial is named by reference and
imported as a module attribute, and its parameters are checked against its signature. A study
file may call labrram's own trial functions, or those of modules it names in ``modules``;
anything else (``builtins:exec``, ``os:system``) is refused before anything is imported. Trials,
chunk and workers are bounded (:data:`MAX_TRIALS`, :data:`MAX_CHUNK`, :data:`MAX_WORKERS`).
"""

from __future__ import annotations

import datetime
import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .montecarlo import BACKENDS, StudyError, _check_params, check_scheduler, resolve
from .textfile import check_depth, read_user_text

__all__ = ["StudyConfig", "load_study_config", "parse_study_config"]

_STUDY_KEYS: dict[str, tuple[type, ...]] = {
    "trial": (str,),
    "trials": (int,),
    "seed": (int,),
    "chunk": (int,),
    "backend": (str,),
    "scheduler": (str,),
    "workers": (int,),
    "modules": (list,),
}
_REQUIRED = ("trial", "trials")
#: bounds on what a study file may ask for (a mistyped exponent must not run for ever or
#: allocate petabytes)
MAX_TRIALS = 100_000_000
MAX_CHUNK = 1_000_000
MAX_WORKERS = 1024


def trial_allowed(ref: str, modules: list[str]) -> bool:
    """Whether a study file may call trial ``ref``: labrram's own trial functions, or a function
    of a module the file names in ``[study] modules`` (the user's explicit choice). Checked
    before anything is imported."""
    mod = ref.split(":", 1)[0]
    return mod == "labrram" or mod.startswith("labrram.") or mod in modules


@dataclass(frozen=True)
class StudyConfig:
    """A checked study file (see the module docstring for the keys)."""

    trial: str
    trials: int
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    chunk: int | None = None
    backend: str = "dask"
    scheduler: str | None = None
    workers: int | None = None
    source: str = "<string>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial, "trials": self.trials, "params": dict(self.params), "seed": self.seed,
            "chunk": self.chunk, "backend": self.backend, "scheduler": self.scheduler, "workers": self.workers,
        }  # fmt: skip


_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "a table"}


def _type_name(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _no_dates(value: Any, where: str) -> None:
    if isinstance(value, (datetime.date, datetime.time)):
        raise StudyError(f"{where}: dates and times are not trial parameters (numbers, strings, booleans, arrays, tables)")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_dates(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_dates(v, f"{where}[{i}]")


def parse_study_config(text: str, source: str = "<string>") -> StudyConfig:
    """Parse and check a study file's text.

    Parameters
    ----------
    text : str
        The TOML document.
    source : str
        Where it came from (a path), for the error messages.

    Returns
    -------
    StudyConfig

    Raises
    ------
    StudyError
        On invalid TOML, unknown tables or keys, values of the wrong type or range, a missing
        or unresolvable trial, or parameters the trial function does not take.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise StudyError(f"{source}: nested too deeply") from None
    check_depth(doc, source, StudyError)
    unknown = sorted(set(doc) - {"study", "params"})
    if unknown:
        raise StudyError(f"{source}: unknown table or key {unknown[0]!r} (expected [study] and [params])")
    study = doc.get("study")
    if not isinstance(study, dict):
        raise StudyError(f"{source}: missing [study] table (with at least trial = 'module:function' and trials = N)")
    for key, value in study.items():
        if key not in _STUDY_KEYS:
            raise StudyError(f"{source}: [study]: unknown key {key!r} (known: {', '.join(_STUDY_KEYS)})")
        want = _STUDY_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, want):
            raise StudyError(f"{source}: [study].{key} must be {_KINDS[want[0]]}, got {_type_name(value)} {value!r}")
    for key in _REQUIRED:
        if key not in study:
            raise StudyError(f"{source}: [study]: missing key {key!r}")
    if not 1 <= study["trials"] <= MAX_TRIALS:
        raise StudyError(f"{source}: [study].trials must be in 1..{MAX_TRIALS}, got {study['trials']}")
    for key, minimum, maximum in (("seed", 0, 2**32 - 1), ("chunk", 1, MAX_CHUNK), ("workers", 1, MAX_WORKERS)):
        if key in study and not minimum <= study[key] <= maximum:
            raise StudyError(f"{source}: [study].{key} must be in {minimum}..{maximum}, got {study[key]}")
    modules = study.get("modules", [])
    if not all(isinstance(m, str) and m and all(part.isidentifier() for part in m.split(".")) for m in modules):
        raise StudyError(f"{source}: [study].modules must be a list of module names such as 'mylab.trials'")
    if isinstance(study["trial"], str) and not trial_allowed(study["trial"], modules):
        mod = study["trial"].split(":", 1)[0]
        raise StudyError(f"{source}: [study].trial {study['trial']!r}: a study file may call labrram's trial functions, or those of "
                         f"modules it names in [study] modules = [...]; {mod!r} is not named (nothing was imported)")  # fmt: skip
    backend = study.get("backend", "dask")
    if backend not in BACKENDS:
        raise StudyError(f"{source}: [study].backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    scheduler = study.get("scheduler")
    try:
        if scheduler is not None:
            check_scheduler(scheduler)
            if backend != "dask":
                raise StudyError(f"a scheduler address needs backend = 'dask', not {backend!r}")
    except StudyError as exc:
        raise StudyError(f"{source}: [study].scheduler: {exc}") from None
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise StudyError(f"{source}: params must be a [params] table, got {_type_name(params)}")
    _no_dates(params, f"{source}: [params]")
    try:
        params = _check_params(params)
        fn = resolve(study["trial"])
    except StudyError as exc:
        raise StudyError(f"{source}: {exc}") from None
    check_trial_params(fn, study["trial"], params, source)
    return StudyConfig(
        trial=study["trial"], trials=study["trials"], params=params, seed=study.get("seed", 0), chunk=study.get("chunk"),
        backend=backend, scheduler=scheduler, workers=study.get("workers"), source=source,
    )  # fmt: skip


def check_trial_params(fn: Any, ref: str, params: dict[str, Any], source: str = "<string>") -> None:
    """Raise :class:`StudyError` unless ``fn(trial_index, seed, **params)`` binds."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: it will tell at run time
        return
    try:
        sig.bind(0, 0, **params)
    except TypeError as exc:
        raise StudyError(f"{source}: [params] do not fit trial {ref}: {exc}") from None


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and check a study file (see :func:`parse_study_config`)."""
    return parse_study_config(read_user_text(path, "study", "TOML", StudyError), str(Path(path)))


def run_study_file(
    config: str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    chunk: int | None = None,
    resume: bool = False,
    backend: str | None = None,
    scheduler: str | None = None,
    progress: Any = None,
    started: Any = None,
) -> dict[str, Any]:
    """Run the study a TOML file describes into the zarr store ``out`` (what ``labrram
    montecarlo`` does) and return its summary: the study, where and how it ran, and the mean,
    std, min and max of every result over the trials done. Arguments left None take the file's
    values; ``scheduler`` alone implies the dask backend. Raises :class:`StudyError` on bad
    input (an existing ``out`` without ``resume`` among it)."""
    import time

    import numpy as np

    from .montecarlo import load_study, run_study

    cfg = load_study_config(config)
    out = Path(out)
    if out.exists() and not resume:
        raise StudyError(f"{out} already exists; use --resume to continue it, or choose another --out")
    backend = backend or ("dask" if scheduler else cfg.backend)
    scheduler = scheduler or (cfg.scheduler if backend == "dask" else None)
    info: dict[str, Any] = {}

    def on_start(what: dict[str, Any]) -> None:
        info.update(what)
        if started is not None:
            started(what)

    t0 = time.perf_counter()
    run_study(cfg.trial, cfg.trials, cfg.params, seed=cfg.seed, out=out, workers=workers or cfg.workers, chunk=chunk or cfg.chunk,
              resume=resume, backend=backend, scheduler=scheduler, progress=progress, started=on_start)  # fmt: skip
    wall = time.perf_counter() - t0
    results, done, _ = load_study(out)
    computed = int(done.sum()) - int(info.get("done", 0))
    stats = {}
    for key, arr in results.items():
        vals = arr[done].astype(float)
        stats[key] = {"shape": list(arr.shape[1:])}
        for name, f in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
            stats[key][name] = float(f(vals)) if vals.size else None
    return {
        "out": str(out), "trial": cfg.trial, "params": cfg.params, "seed": cfg.seed, "backend": info.get("backend", backend),
        "workers": info.get("workers"), "scheduler": info.get("scheduler"), "dashboard": info.get("dashboard"), "chunk": info.get("chunk"),
        "trials": cfg.trials, "done": int(done.sum()), "computed": computed, "wall_time": wall,
        "trials_per_second": computed / wall if wall > 0 else None, "results": stats,
    }  # fmt: skip
