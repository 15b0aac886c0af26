"""Monte Carlo studies: many independent trials, in parallel, with results in a run store.

A *trial* is a top-level, importable function::

    fn(trial_index: int, seed: int, **params) -> dict[str, float | numpy.ndarray]

named by reference (``"package.module:function"``) and called with JSON-able ``params``. Each
result key must have the same fixed shape in every trial. Nothing but the reference, the
params (JSON) and two integers crosses a process boundary, and nothing unpickled from user
input is ever loaded, so another backend (e.g. Dask) can submit the very same trials.

Seeds: the study seed feeds a :class:`numpy.random.SeedSequence`; trial ``k`` gets the first
32-bit word of its ``k``-th spawned child. The result of a trial therefore depends only on
``(fn, params, study seed, k)``, never on the number of workers or the chunking.

Store layout (:class:`labrram.store.RunStore`, kind ``"montecarlo"``): one array per result key
with dimensions ``("trial", "<key>_0", ...)`` and a boolean ``done`` array ``("trial",)``.
Results are written chunk by chunk as they complete and ``done`` is set after its values, so
an interrupted study restarted with ``resume=True`` computes only the missing trials.

This module imports neither torch nor :mod:`labrram.sim`; trial functions import what they need.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["StudyError", "example_trial", "load_study", "resolve", "run_study", "trial_seeds"]


class StudyError(ValueError):
    """A study that cannot run as asked (bad trial reference, params, results or store)."""


def resolve(fn_ref: str) -> Callable[..., dict[str, Any]]:
    """The trial function named ``"package.module:function"``.

    Raises
    ------
    StudyError
        When the reference is malformed, the module does not import, or the attribute is not a
        callable.
    """
    if not isinstance(fn_ref, str) or fn_ref.count(":") != 1:
        raise StudyError(f"trial reference must be 'module:function', got {fn_ref!r}")
    mod_name, attr = fn_ref.split(":")
    if not mod_name or not attr.isidentifier():
        raise StudyError(f"trial reference must be 'module:function', got {fn_ref!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise StudyError(f"trial reference {fn_ref!r}: cannot import {mod_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise StudyError(f"trial reference {fn_ref!r}: {mod_name!r} has no callable {attr!r}")
    return fn


def _check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise StudyError("params must be a dict with string keys")
    try:
        text = json.dumps(params, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StudyError(f"params must be JSON-able (numbers, strings, lists, dicts): {exc}") from None
    return json.loads(text)


def trial_seeds(seed: int, n_trials: int) -> np.ndarray:
    """Per-trial seeds (uint32) spawned from the study seed with :class:`numpy.random.SeedSequence`."""
    if int(seed) != seed or seed < 0:
        raise StudyError(f"seed must be a non-negative integer, got {seed!r}")
    children = np.random.SeedSequence(int(seed)).spawn(int(n_trials))
    return np.array([c.generate_state(1, np.uint32)[0] for c in children], dtype=np.uint32)


def _as_results(fn_ref: str, k: int, out: Any) -> dict[str, np.ndarray]:
    if not isinstance(out, dict) or not out:
        raise StudyError(f"{fn_ref} trial {k}: must return a non-empty dict, got {type(out).__name__}")
    res = {}
    for key, value in out.items():
        if not isinstance(key, str) or not key.isidentifier() or key == "done":
            raise StudyError(f"{fn_ref} trial {k}: result key {key!r} must be an identifier other than 'done'")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise StudyError(f"{fn_ref} trial {k}: result {key!r} must be numeric, got dtype {arr.dtype}")
        res[key] = arr
    return res


def _run_chunk(fn_ref: str, params_json: str, items: list[tuple[int, int]]) -> list[tuple[int, dict[str, np.ndarray]]]:
    """Run trials ``[(index, seed), ...]`` in this process (the unit submitted to workers)."""
    fn = resolve(fn_ref)
    params = json.loads(params_json)
    return [(k, _as_results(fn_ref, k, fn(k, int(s), **params))) for k, s in items]


def _open_store(out: Path, fn_ref: str, params: dict, seed: int, n_trials: int, resume: bool):
    from labrram.store import RunStore, StoreError

    meta = {"fn": fn_ref, "params": params, "seed": int(seed), "n_trials": int(n_trials)}
    if out.exists():
        if not resume:
            raise StudyError(f"{out} already exists; pass resume=True to continue it or choose another path")
        store = RunStore.open(out, mode="r+")
        have = store.attrs.get("study")
        if have != meta:
            raise StudyError(f"{out} holds another study ({have}); cannot resume {meta}")
        try:
            done = store.read("done").astype(bool)
        except StoreError:
            done = np.zeros(n_trials, bool)
        return store, done
    store = RunStore.create(out, "montecarlo", {"study": meta})
    return store, np.zeros(n_trials, bool)


def _ensure_arrays(store, results: dict[str, np.ndarray], n_trials: int, chunk: int) -> None:
    group = store.group
    have = set(group.array_keys())
    for key, arr in results.items():
        if key in have:
            a = group[key]
            if tuple(a.shape[1:]) != arr.shape:
                raise StudyError(f"result {key!r} has shape {arr.shape}, the store holds {tuple(a.shape[1:])}")
            continue
        dtype = np.float64 if arr.dtype.kind == "f" else np.int64
        group.create_array(
            key,
            shape=(n_trials, *arr.shape),
            dtype=dtype,
            chunks=(chunk, *arr.shape) if arr.shape else (chunk,),
            fill_value=np.nan if dtype == np.float64 else 0,
            dimension_names=["trial", *(f"{key}_{d}" for d in range(arr.ndim))],
            attributes={"units": "", "source": "trial result"},
        )
    if "done" not in have:
        group.create_array("done", shape=(n_trials,), dtype=bool, chunks=(chunk,), fill_value=False,
                           dimension_names=["trial"], attributes={"units": "1"})


def _write(store, batch: list[tuple[int, dict[str, np.ndarray]]], n_trials: int, chunk: int) -> None:
    _ensure_arrays(store, batch[0][1], n_trials, chunk)
    idx = np.array([k for k, _ in batch])
    for key in batch[0][1]:
        store.group[key].set_orthogonal_selection((idx,), np.stack([r[key] for _, r in batch]))
    store.group["done"].set_orthogonal_selection((idx,), np.ones(idx.size, bool))


def load_study(out: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """``(results, done, study)`` of a stored study: arrays ``(n_trials, ...)`` (NaN where not done)."""
    from labrram.store import RunStore

    store = RunStore.open(out)
    study = store.attrs.get("study")
    if study is None:
        raise StudyError(f"{out}: not a Monte Carlo study")
    keys = [k for k in sorted(store.group.array_keys()) if k != "done"]
    done = store.read("done").astype(bool) if "done" in store.group.array_keys() else np.zeros(study["n_trials"], bool)
    return {k: store.read(k) for k in keys}, done, study


def run_study(
    fn_ref: str,
    n_trials: int,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int | None = None,
    chunk: int | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    context: str = "spawn",
) -> dict[str, np.ndarray]:
    """Run ``n_trials`` independent trials of ``fn_ref`` and gather their results.

    Parameters
    ----------
    fn_ref : str
        ``"package.module:function"`` of a top-level trial function (module docstring).
    n_trials : int
        Number of trials (>= 1).
    params : dict, optional
        JSON-able keyword arguments passed to every trial.
    seed : int
        Study seed; trial seeds are spawned from it (:func:`trial_seeds`).
    out : path, optional
        Run store to write results into as chunks complete (``None``: memory only).
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs serially in this process.
    chunk : int, optional
        Trials per submitted task and per store chunk (default: about 4 tasks per worker,
        at most 64).
    resume : bool
        Continue an existing store of the same study, computing only trials not yet done.
    progress : callable, optional
        Called as ``progress(done, n_trials)`` after each completed chunk.
    context : str
        Multiprocessing start method for the workers (``"spawn"`` or ``"forkserver"``).

    Returns
    -------
    dict of str to numpy.ndarray
        Every result key stacked over trials, shape ``(n_trials, ...)``; with a store, the
        stored values (including trials computed by an earlier, interrupted run).

    Raises
    ------
    StudyError
        For a bad reference, parameters, worker count, inconsistent results or store.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise StudyError(f"n_trials must be a positive integer, got {n_trials!r}")
    n_trials = int(n_trials)
    resolve(fn_ref)  # fail early, in the parent, with a clear message
    params = _check_params(params)
    params_json = json.dumps(params, sort_keys=True)
    if workers is None:
        workers = os.cpu_count() or 1
    if int(workers) != workers or workers < 1:
        raise StudyError(f"workers must be a positive integer, got {workers!r}")
    workers = int(workers)
    if chunk is None:
        chunk = max(1, min(64, -(-n_trials // (4 * workers))))
    if int(chunk) != chunk or chunk < 1:
        raise StudyError(f"chunk must be a positive integer, got {chunk!r}")
    chunk = int(chunk)
    if context not in ("spawn", "forkserver"):
        raise StudyError(f"context must be 'spawn' or 'forkserver', got {context!r}")
    seeds = trial_seeds(seed, n_trials)

    store = None
    done = np.zeros(n_trials, bool)
    if out is not None:
        store, done = _open_store(Path(out), fn_ref, params, seed, n_trials, resume)
        if "done" in set(store.group.array_keys()):
            chunk = int(store.group["done"].chunks[0])  # keep the stored chunking
    todo = np.flatnonzero(~done)
    # chunks aligned with the store's chunks: each write touches whole chunks only
    tasks = []
    for start in range(0, n_trials, chunk):
        ks = [int(k) for k in todo[(todo >= start) & (todo < start + chunk)]]
        if ks:
            tasks.append([(k, int(seeds[k])) for k in ks])

    memory: dict[int, dict[str, np.ndarray]] = {}
    n_done = int(done.sum())

    def collect(batch: list[tuple[int, dict[str, np.ndarray]]]) -> None:
        nonlocal n_done
        if store is not None:
            _write(store, batch, n_trials, chunk)
        else:
            memory.update(batch)
        n_done += len(batch)
        if progress is not None:
            progress(n_done, n_trials)

    if workers == 1 or len(tasks) <= 1:
        for items in tasks:
            collect(_run_chunk(fn_ref, params_json, items))
    else:
        ctx = multiprocessing.get_context(context)
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
            pending = {pool.submit(_run_chunk, fn_ref, params_json, items) for items in tasks}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        collect(fut.result())
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise

    if store is not None:
        results, _, _ = load_study(store.path)
        return results
    keys = list(next(iter(memory.values())).keys())
    shapes = {k: memory[min(memory)][k].shape for k in keys}
    out_arrays = {}
    for key in keys:
        for k, r in memory.items():
            if key not in r or r[key].shape != shapes[key]:
                raise StudyError(f"{fn_ref} trial {k}: result {key!r} missing or of another shape than {shapes[key]}")
        out_arrays[key] = np.stack([memory[k][key] for k in range(n_trials)])
    return out_arrays


def example_trial(trial_index: int, seed: int, size: int = 3, scale: float = 1.0) -> dict[str, Any]:
    """A minimal trial (the protocol's reference; used by the tests): ``size`` normal draws.

    Returns ``{"x": (size,) draws times scale, "mean": their mean, "index": trial_index}``.
    """
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(int(size))
    return {"x": x, "mean": float(x.mean()), "index": int(trial_index)}
