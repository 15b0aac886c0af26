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

Backends: ``"serial"`` (this process), ``"process"`` (a local process pool, the default) and
``"dask"`` (a :mod:`dask.distributed` client: an embedded ``LocalCluster`` on the loopback
interface, or an existing cluster given by its scheduler address). Every backend submits the
same unit, :func:`_run_chunk` with a reference string, the params as JSON and ``(index, seed)``
integer pairs, and only this (client) process writes the store, so workers need no shared
filesystem. Dask is imported only when that backend is used (``pip install labrram[dask]``).

This module imports neither torch nor :mod:`labrram.sim`; trial functions import what they need.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import multiprocessing
import os
import re
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "BACKENDS",
    "StudyError",
    "bench_read_trial",
    "check_scheduler",
    "example_trial",
    "load_study",
    "logged_trial",
    "resolve",
    "run_study",
    "trial_seeds",
]

#: the ways :func:`run_study` can run its trials
BACKENDS = ("serial", "process", "dask")
#: seconds to wait for a Dask scheduler to answer and (for an existing cluster) for a worker
DASK_TIMEOUT = 10.0
_SCHEDULER = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")


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
        if store.attrs.get("kind") != "montecarlo" or not isinstance(have, dict):
            raise StudyError(f"{out} is a {store.attrs.get('kind')!r} store, not a Monte Carlo study; choose another path")
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


def _write(
    store, batch: list[tuple[int, dict[str, np.ndarray]]], n_trials: int, chunk: int, arrays: dict[str, Any] | None = None
) -> None:
    """Write a task's trials, values first and their ``done`` flags last. ``arrays`` caches the
    opened zarr arrays and their metadata between calls (opening them costs more than writing a
    small chunk). A task that covers whole chunks of an array (as tasks of the study's own
    chunking do) is written a chunk file at a time (:mod:`labrram.zarrfile`); any other rows
    through zarr-python."""
    from labrram import zarrfile

    arrays = {} if arrays is None else arrays
    keys = list(batch[0][1])
    if not all(k in arrays for k in keys) or "done" not in arrays:
        _ensure_arrays(store, batch[0][1], n_trials, chunk)
        for k in [*keys, "done"]:
            try:
                meta = zarrfile.read_metadata(store.path / k)
            except zarrfile.ZarrFileError:  # codecs not written directly: zarr-python writes it
                meta = None
            arrays[k] = (store.group[k], meta)
    for k, r in batch:
        if list(r) != keys:
            raise StudyError(f"trial {k}: result keys {sorted(r)} differ from the other trials' {sorted(keys)}")
        for key in keys:
            if r[key].shape != tuple(arrays[key][0].shape[1:]):
                raise StudyError(f"trial {k}: result {key!r} has shape {r[key].shape}, the store holds {tuple(arrays[key][0].shape[1:])}")
    idx = np.array([k for k, _ in batch])
    contiguous = bool(np.all(np.diff(idx) == 1))
    start, stop = int(idx[0]), int(idx[-1]) + 1
    for key in [*keys, "done"]:
        array, meta = arrays[key]
        values = np.ones(idx.size, bool) if key == "done" else np.stack([r[key] for _, r in batch])
        c = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0]) if meta is not None else 0
        if contiguous and c and start % c == 0 and ((stop - start) % c == 0 or stop == int(meta["shape"][0])) and stop <= int(meta["shape"][0]):
            # whole chunks (the last one may end the array): every row of each chunk is this task's
            zarrfile.write_chunks(store.path / key, meta, start, values.astype(np.dtype(meta["data_type"]), copy=False))
        elif contiguous:
            array[start:stop] = values
        else:
            array.set_orthogonal_selection((idx,), values)


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


def check_scheduler(address: Any) -> str:
    """A Dask scheduler address (``"tcp://HOST:PORT"``; also ``tls://``, ``ws://``, ``wss://``,
    ``ucx://``, ``inproc://``), checked for its form only.

    Raises
    ------
    StudyError
        When the address is not a string of that form.
    """
    if not isinstance(address, str) or not _SCHEDULER.match(address):
        raise StudyError(f"scheduler must be an address like 'tcp://HOST:PORT', got {address!r}")
    return address


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


class _DaskSession:
    """A :mod:`distributed` client on a new ``LocalCluster`` (loopback, one single-threaded
    process per worker) or on an existing scheduler; :meth:`close` closes both."""

    def __init__(self, scheduler: str | None, workers: int, timeout: float) -> None:
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise StudyError("the dask backend needs dask.distributed: install labrram[dask] (pip install 'labrram[dask]')") from None
        self.cluster = None
        self.scheduler = scheduler
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise StudyError(f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(exc).split())}") from None
            try:
                self.client.wait_for_workers(1, timeout=timeout)
            except (OSError, TimeoutError):
                self.close()
                raise StudyError(f"the Dask scheduler at {scheduler} has no workers (none joined within {timeout:g} s)") from None
            self.dashboard = self._link()
        else:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
            )  # fmt: skip
            try:
                self.client = Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
            self.scheduler = self.cluster.scheduler_address
            # without bokeh the scheduler serves only a placeholder page: no dashboard to show
            self.dashboard = self._link() if _has_bokeh() else None

    def _link(self) -> str | None:
        try:
            return self.client.dashboard_link or None
        except Exception:  # no HTTP service on this scheduler
            return None

    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _plan(n_trials: int, done: np.ndarray, chunk: int, seeds: np.ndarray) -> list[list[tuple[int, int]]]:
    """Tasks of ``(index, seed)`` pairs aligned with the store's chunks (each write touches whole
    chunks only), holding only the trials not yet done."""
    todo = np.flatnonzero(~done)
    tasks = []
    for start in range(0, n_trials, chunk):
        ks = [int(k) for k in todo[(todo >= start) & (todo < start + chunk)]]
        if ks:
            tasks.append([(k, int(seeds[k])) for k in ks])
    return tasks


def _default_chunk(n_trials: int, workers: int) -> int:
    return max(1, min(64, -(-n_trials // (4 * workers))))


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
    backend: str | None = None,
    scheduler: str | None = None,
    started: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = DASK_TIMEOUT,
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
        Worker processes of the process pool or of the embedded Dask ``LocalCluster`` (default
        ``os.cpu_count()``). With the process backend, 1 runs serially in this process. Ignored
        with ``scheduler``: an existing cluster has the workers it has.
    chunk : int, optional
        Trials per submitted task and per store chunk (default: about 4 tasks per worker,
        at most 64). A resumed store keeps its own chunking.
    resume : bool
        Continue an existing store of the same study, computing only trials not yet done.
    progress : callable, optional
        Called as ``progress(done, n_trials)`` after each completed chunk.
    context : str
        Multiprocessing start method for the process pool (``"spawn"`` or ``"forkserver"``).
    backend : {"process", "dask", "serial"}, optional
        How trials run: a local process pool, a :mod:`dask.distributed` cluster, or in this
        process. Default ``"dask"`` when ``scheduler`` is given, else ``"process"``. The results
        are the same for every backend.
    scheduler : str, optional
        Address of an existing Dask scheduler (``"tcp://HOST:PORT"``); without it the dask
        backend starts (and afterwards closes) a ``LocalCluster`` on 127.0.0.1.
    started : callable, optional
        Called once before the first task runs with a dict: ``backend``, ``workers``,
        ``scheduler`` and ``dashboard`` (addresses or None), ``done`` (trials already stored),
        ``n_trials``, ``tasks`` and ``chunk``.
    timeout : float
        Seconds to wait for a Dask scheduler to answer and for one of its workers (s).

    Returns
    -------
    dict of str to numpy.ndarray
        Every result key stacked over trials, shape ``(n_trials, ...)``; with a store, the
        stored values (including trials computed by an earlier, interrupted run).

    Raises
    ------
    StudyError
        For a bad reference, parameters, backend, scheduler, worker count, inconsistent
        results or store; when dask is not installed or its scheduler cannot be reached.

    Notes
    -----
    On an exception or Ctrl-C pending tasks are cancelled, the pool or cluster is shut down,
    and every trial already written to the store stays there (``resume=True`` continues).
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise StudyError(f"n_trials must be a positive integer, got {n_trials!r}")
    n_trials = int(n_trials)
    resolve(fn_ref)  # fail early, in the parent, with a clear message
    params = _check_params(params)
    params_json = json.dumps(params, sort_keys=True)
    if backend is None:
        backend = "dask" if scheduler is not None else "process"
    if backend not in BACKENDS:
        raise StudyError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if scheduler is not None:
        if backend != "dask":
            raise StudyError(f"a scheduler address needs the dask backend, not {backend!r}")
        check_scheduler(scheduler)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise StudyError(f"workers must be a positive integer, got {workers!r}")
    workers = int(workers)
    if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1):
        raise StudyError(f"chunk must be a positive integer, got {chunk!r}")
    if context not in ("spawn", "forkserver"):
        raise StudyError(f"context must be 'spawn' or 'forkserver', got {context!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise StudyError(f"timeout must be a positive number of seconds, got {timeout!r}")
    seeds = trial_seeds(seed, n_trials)

    store = None
    done = np.zeros(n_trials, bool)
    # an existing store is checked before any cluster starts; a new one is created only once
    # the backend runs, so an unreachable scheduler leaves no empty store behind
    if out is not None and (Path(out).exists() or backend != "dask"):
        store, done = _open_store(Path(out), fn_ref, params, seed, n_trials, resume)

    session = None
    if backend == "dask":
        if chunk is None and scheduler is None:
            chunk = _default_chunk(n_trials, workers)
        n_tasks = -(-int((~done).sum()) // chunk) if chunk is not None else n_trials
        session = _DaskSession(scheduler, max(1, min(workers, n_tasks)), float(timeout))
    try:
        if out is not None and store is None:
            store, done = _open_store(Path(out), fn_ref, params, seed, n_trials, resume)
        if chunk is None:
            chunk = _default_chunk(n_trials, session.n_workers() if session is not None else workers)
        chunk = int(chunk)
        if store is not None and "done" in set(store.group.array_keys()):
            chunk = int(store.group["done"].chunks[0])  # keep the stored chunking
        tasks = _plan(n_trials, done, chunk, seeds)

        memory: dict[int, dict[str, np.ndarray]] = {}
        arrays: dict[str, Any] = {}  # the store's opened arrays
        n_done = int(done.sum())

        def collect(batch: list[tuple[int, dict[str, np.ndarray]]]) -> None:
            nonlocal n_done
            if store is not None:
                from labrram.signals import deferred_signals

                with deferred_signals():  # a Ctrl-C lands between chunk writes, never inside one
                    _write(store, batch, n_trials, chunk, arrays)
            else:
                memory.update(batch)
            n_done += len(batch)
            if progress is not None:
                progress(n_done, n_trials)

        serial = backend == "serial" or (backend == "process" and (workers == 1 or len(tasks) <= 1))
        if started is not None:
            started({
                "backend": "serial" if serial else backend,
                "workers": 1 if serial else (session.n_workers() if session is not None else min(workers, len(tasks))),
                "scheduler": None if session is None else session.scheduler,
                "dashboard": None if session is None else session.dashboard,
                "done": n_done, "n_trials": n_trials, "tasks": len(tasks), "chunk": chunk,
            })  # fmt: skip
        if serial:
            for items in tasks:
                collect(_run_chunk(fn_ref, params_json, items))
        elif session is not None:
            _run_dask(session.client, fn_ref, params_json, tasks, collect)
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
    finally:
        if session is not None:
            session.close()

    if store is not None:
        results, _, _ = load_study(store.path)
        return results
    if not memory:  # pragma: no cover - every trial runs when there is no store
        raise StudyError("no trial ran")
    keys = list(next(iter(memory.values())).keys())
    shapes = {k: memory[min(memory)][k].shape for k in keys}
    out_arrays = {}
    for key in keys:
        for k, r in memory.items():
            if key not in r or r[key].shape != shapes[key]:
                raise StudyError(f"{fn_ref} trial {k}: result {key!r} missing or of another shape than {shapes[key]}")
        out_arrays[key] = np.stack([memory[k][key] for k in range(n_trials)])
    return out_arrays


def _run_dask(client: Any, fn_ref: str, params_json: str, tasks: list[list[tuple[int, int]]], collect: Callable) -> None:
    """Submit every task to ``client`` and hand each result to ``collect`` as it arrives; on any
    exception (a failed trial, Ctrl-C) cancel what is still pending and re-raise."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:12]  # unique keys: a rerun never reuses a stale result
    futures = [
        client.submit(_run_chunk, fn_ref, params_json, items, key=f"labrram-trials-{items[0][0]}-{token}", pure=False, retries=0)
        for items in tasks
    ]
    try:
        for fut in as_completed(futures, loop=client.loop):
            collect(fut.result())
            fut.release()
    except BaseException:
        client.cancel([f for f in futures if not f.done()])
        raise


def example_trial(trial_index: int, seed: int, size: int = 3, scale: float = 1.0) -> dict[str, Any]:
    """A minimal trial (the protocol's reference; used by the tests): ``size`` normal draws.

    Returns ``{"x": (size,) draws times scale, "mean": their mean, "index": trial_index}``.
    """
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(int(size))
    return {"x": x, "mean": float(x.mean()), "index": int(trial_index)}


def bench_read_trial(trial_index: int, seed: int, rows: int = 8, cols: int = 8, reads: int = 4) -> dict[str, Any]:
    """A trial on the simulated bench: a fresh ReRAM chip (seeded by the trial seed) behind the
    default simulated station, its whole array read ``reads`` times through the instruments.

    The bench is created inside the calling (worker) process: nothing but the two integers and
    the JSON params crosses the process boundary. Costs about 10 ms (8x8, 4 reads) to 40 ms
    (128x128, 8 reads) per trial, plus a few hundred ms for the imports of a fresh worker.

    Parameters
    ----------
    trial_index, seed : int
        Trial number and its seed (:func:`trial_seeds`).
    rows, cols : int
        Size of the simulated array.
    reads : int
        Whole-array reads (>= 2, for the read-noise estimate).

    Returns
    -------
    dict
        ``g_median``, ``g_mean``, ``g_min``, ``g_max``: conductance over the array (S);
        ``read_noise_rel``: median over the devices of the relative spread of their reads (1);
        ``bench_time``: projected bench time of the reads (s).
    """
    from labrram import sim
    from labrram.station import load_station

    rows, cols, reads = int(rows), int(cols), int(reads)
    if reads < 2:
        raise ValueError(f"reads must be >= 2 (the read noise needs two reads), got {reads}")
    name = "montecarlo"
    sim.configure_bench(name, seed=int(seed), rows=rows, cols=cols)  # a fresh chip, even for a repeated seed
    station = load_station().with_simulation(bench=name, seed=int(seed), rows=rows, cols=cols)
    with station.connect() as connected:
        xb = connected.crossbar
        t0 = connected.bench_time()["now"]
        g = np.stack([xb.read() for _ in range(reads)])
        bench_time = connected.bench_time()["now"] - t0
    mean = g.mean(axis=0)
    return {
        "g_median": float(np.median(mean)),
        "g_mean": float(mean.mean()),
        "g_min": float(mean.min()),
        "g_max": float(mean.max()),
        "read_noise_rel": float(np.median(g.std(axis=0, ddof=1) / mean)),
        "bench_time": float(bench_time),
    }


def logged_trial(trial_index: int, seed: int, log_dir: str, delay: float = 0.0) -> dict[str, Any]:
    """:func:`example_trial`'s draw, leaving a trace of every computation: a new empty file
    ``log_dir/trial-<index>-<pid>-<random>`` per call, then a sleep of ``delay`` (s).

    Used to check which trials a (resumed) study really computes.
    """
    Path(log_dir, f"trial-{int(trial_index)}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    if delay > 0:
        time.sleep(float(delay))
    return {"value": float(np.random.default_rng(seed).standard_normal()), "index": int(trial_index)}
