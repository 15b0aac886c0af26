"""The ``labrram`` command.

Every command takes ``--station FILE`` (default: the simulated bench) and ``--json`` (a
machine-readable summary on stdout instead of the table). Exit codes: 0 success, 1 an
instrument or run error, 2 bad input (station file, arguments), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__


class UsageError(ValueError):
    """Bad input from the user: exit code 2."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--station", metavar="FILE", help="station file (TOML); default: the simulated bench")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")


# --- info ---------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    from .api import info

    return info(args.station)


def show_info(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    console.print(f"{summary['station']}  ({summary['source']})" + ("  simulated" if summary["simulated"] else ""))
    table = Table("instrument", "driver", "address", "identification")
    for name, i in summary["instruments"].items():
        table.add_row(name, i["driver"], i["address"], i["idn"])
    console.print(table)
    if "array" in summary:
        line = f"array: {summary['array'][0]} x {summary['array'][1]}"
        if summary.get("arrays", 1) > 1:
            line += f" (array {summary['array_index']} of the {summary['arrays']} on the board)"
        console.print(line)
    limits = ", ".join(f"{k}={v:g}" for k, v in summary["limits"].items())
    console.print(f"limits: {limits}")


# --- read -----------------------------------------------------------------------------------
def cmd_read(args: argparse.Namespace) -> dict[str, Any]:
    from .api import read

    return read(args.station, out=args.out).summary()


def show_read(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    g = summary["conductance"]
    table = Table("quantity", "value")
    table.add_row("array", f"{summary['shape'][0]} x {summary['shape'][1]}")
    for key in ("median", "mean", "min", "max"):
        table.add_row(f"conductance {key}", f"{g[key] * 1e6:.3f} µS")
    table.add_row("wall time", f"{summary['wall_time']:.3f} s")
    if summary["projected_bench_time"] is not None:
        table.add_row("projected bench time", f"{summary['projected_bench_time'] * 1e3:.2f} ms")
    table.add_row("written to", summary["out"])
    console.print(table)


# --- characterize / calibrate -------------------------------------------------------------
def _progress():
    """A rich progress bar on stderr (stdout stays clean for --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, emoji=False)
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
                    transient=True, disable=not console.is_terminal)  # fmt: skip  # a log file or a pipe gets no bar (nor the blank line it leaves)


def _literal_console(stderr: bool = False):
    """A rich console that prints user text (paths, names, patterns) as it is: no markup, no
    highlighting, no emoji codes."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, highlight=False, emoji=False)


def _array(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        rows, cols = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--array must look like 32x32, got {text!r}") from None
    return rows, cols


def cmd_characterize(args: argparse.Namespace) -> dict[str, Any]:
    from .api import characterize, resume

    with _progress() as progress:
        task = progress.add_task(f"characterize {args.kind or ''}", total=None)

        def tick(label: str, step: int, total: int) -> None:
            progress.update(task, description=label, completed=step, total=total)

        if args.resume:
            if args.devices is not None or args.cycles is not None or args.array:
                raise UsageError("--devices, --cycles and --array cannot be combined with --resume: the run's settings are in its store")
            run = resume(args.out, args.station, progress=tick, other_chip=args.other_chip, array_index=args.array_index)
        else:
            options = {"seed": args.seed, **({"n_devices": args.devices} if args.devices is not None else {}), **({"cycles": args.cycles} if args.cycles is not None else {})}
            run = characterize(args.station, kind=args.kind, out=args.out, array=_array(args.array), array_index=args.array_index, progress=tick, **options)
    return run.summary()


def show_characterize(summary: dict[str, Any], console) -> None:
    bench = summary["projected_bench_time"]
    console.print(
        f"characterized {summary['devices']} {summary['kind']} devices "
        f"of {summary['chip']} in {summary['wall_time']:.1f} s"
        + (f" (projected bench time {bench / 60:.1f} min)" if bench is not None else "")
        + f" -> {summary['out']}"
    )


def cmd_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from .api import calibrate

    cal = calibrate(args.run, out=args.out, bootstrap=args.bootstrap, plots=args.plots, family=args.family)
    gof = cal.goodness_of_fit
    if gof.get("gaussian_rejected"):
        gates = cal.provenance.get("routine", {}).get("gates") or []
        levels = ", ".join(f"{gates[i]:.3g} V" if i < len(gates) else f"level {i}" for i in gof.get("rejected_levels", []))
        _literal_console(stderr=True).print(
            f"warning: the SET conductance is not Gaussian (Anderson-Darling, alpha {gof.get('alpha', 0):g}) at {levels}; "
            f"programming uses the {cal.model.set_family} model" + (" (--family gaussian asked for it)" if cal.model.set_family == "gaussian" else "")
        )
    return {
        "out": str(args.out),
        "kind": cal.kind,
        "n_devices": cal.n_devices,
        "estimates": {k: e.to_dict() for k, e in cal.estimates.items()},
        "protocol_estimates": {k: e.to_dict() for k, e in cal.protocol_estimates.items()},
        "goodness_of_fit": cal.goodness_of_fit,
        "plots": cal.plots,  # type: ignore[attr-defined]
    }


def _key_values(items: list[str] | None) -> dict[str, str]:
    """``--setting KEY=VALUE`` options as a dict (values as text)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--setting must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from .api import import_measurements
    from .store import RunStore

    out = import_measurements(args.file, args.kind, out=args.out, settings=_key_values(args.setting))
    store = RunStore.open(out)
    arrays = {name: list(store.group[name].shape) for name in sorted(store.group.array_keys()) if store.array_attrs(name).get("measured")}
    return {"out": str(out), "kind": args.kind, "source": str(args.file), "arrays": arrays, "settings": store.attrs.get("settings", {})}


def show_import(summary: dict[str, Any], console) -> None:
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in summary["arrays"].items())
    console.print(f"{summary['kind']} measurements from {summary['source']} -> {summary['out']}: {shapes}", markup=False)
    console.print(f"next: labrram calibrate {summary['out']} --out CAL.json", markup=False)


def show_calibrate(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table("parameter", "value", "95 % interval", "unit", title=f"{summary['kind']} calibration from {summary['n_devices']} devices")
    for name, e in summary["estimates"].items():
        lo, hi = e["ci95"]
        table.add_row(name, f"{e['value']:.4g}", f"[{lo:.4g}, {hi:.4g}]", e["unit"])
    console.print(table)
    if summary.get("protocol_estimates"):
        table = Table("quantity", "value", "95 % interval", "unit", title="achieved by the characterization's protocol (not device parameters)")
        for name, e in summary["protocol_estimates"].items():
            lo, hi = e["ci95"]
            table.add_row(name, f"{e['value']:.4g}", f"[{lo:.4g}, {hi:.4g}]", e["unit"])
        console.print(table)
    gof = summary["goodness_of_fit"]
    console.print(", ".join(f"{k}={v:.4g}" for k, v in gof.items() if isinstance(v, float)))
    if "set_family" in gof:
        verdict = "rejected" if gof.get("gaussian_rejected") else "not rejected"
        console.print(f"Gaussian SET distribution {verdict} (Anderson-Darling per level, alpha {gof.get('alpha', 0):g}); programming uses the {gof['set_family']} model")
    console.print(f"written to {summary['out']}" + (f"; plots: {', '.join(summary['plots'])}" if summary["plots"] else ""))


# --- program / report --------------------------------------------------------------------------
def cmd_program(args: argparse.Namespace) -> dict[str, Any]:
    from .api import program, resume
    from .targets import PATTERNS

    if args.resume and (args.targets or args.sigma or args.setting):
        raise UsageError("--targets, --sigma and --setting cannot be combined with --resume: the run's targets and settings are in its store")
    if not args.resume and not args.targets:
        raise UsageError("--targets is required (FILE.npy or a pattern: " + PATTERNS + ")")
    with _progress() as progress:
        task = progress.add_task(args.protocol, total=None)

        def tick(label: str, done: int, total: int) -> None:
            progress.update(task, description=label, completed=done, total=total)

        if args.resume:
            if args.kind or args.array:
                raise UsageError("--kind and --array cannot be combined with --resume: the run's chip is in its store")
            result = resume(args.out, args.station, progress=tick, other_chip=args.other_chip, array_index=args.array_index)
        else:
            result = program(args.targets, args.station, protocol=args.protocol, calibration=args.calibration, sigma=args.sigma,
                             settings=_key_values(args.setting) or None, out=args.out, seed=args.seed, kind=args.kind,
                             array=_array(args.array), array_index=args.array_index, progress=tick)  # fmt: skip
    summary = result.summary()
    summary.update(out=str(args.out), link_faults=result.link_faults, settled_batches=result.settled)
    return _finite_json(summary)


def show_program(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table("quantity", "value", title=f"{summary['protocol']} on {summary['devices']} devices")
    table.add_row("converged", f"{summary['converged_fraction'] * 100:.2f} %")
    if summary.get("rms_error_converged") is not None:
        table.add_row("RMS error, converged devices", f"{summary['rms_error_converged'] * 1e6:.3f} µS")
    table.add_row("RMS error, all devices", f"{summary['rms_error'] * 1e6:.3f} µS (relative: {summary['rms_relative_error'] * 100:.2f} %)")
    table.add_row("pulses per device", f"{summary['pulses_per_device']:.2f} (max {summary['max_pulses']})")
    table.add_row("wall time", f"{summary['wall_time']:.2f} s")
    if summary.get("bench_time") is not None:
        table.add_row("projected bench time", f"{summary['bench_time']:.3f} s")
    table.add_row("physical limit", f"{summary['physical_limit']:.3f} s")
    if summary.get("link_faults"):
        table.add_row("link faults recovered", str(summary["link_faults"]))
    table.add_row("written to", summary["out"])
    console.print(table)


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from .report import program_report
    from .store import RunStore, StoreError

    try:
        store = RunStore.open(args.run)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if store.attrs.get("kind") != "program":
        raise UsageError(f"{args.run} is a {store.attrs.get('kind')!r} run; report reads programming runs")
    out_dir = Path(args.out) if args.out else Path(args.run).with_suffix("").with_name(Path(args.run).stem + "-report")
    try:
        return program_report(store, out_dir, html=args.html)
    except (StoreError, AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:  # a damaged or partial store
        raise UsageError(f"{args.run}: cannot report this run ({type(exc).__name__}: {exc})") from None


def show_report(summary: dict[str, Any], console) -> None:
    console.print(f"{summary['protocol']}: {summary['devices']} devices, {summary['converged_fraction'] * 100:.2f} % converged, "
                  f"{summary['pulses_per_device']:.2f} pulses/device, status {summary['status']}")  # fmt: skip
    console.print("plots: " + ", ".join(summary["plots"]))
    if summary.get("html"):
        console.print(f"one self-contained page: {summary['html']}")


# --- watch ----------------------------------------------------------------------------------
def cmd_watch(args: argparse.Namespace) -> dict[str, Any]:
    import time

    from .live import watch

    server = watch(args.run, port=args.port)
    _literal_console(stderr=True).print(f"watching {args.run} on {server.url} (this computer only; Ctrl-C stops)")
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    state = server.state()
    return {"run": str(args.run), "url": server.url, "requests": server.requests - 1, "status": state.get("status"), "kind": state.get("kind")}


def show_watch(summary: dict[str, Any], console) -> None:
    console.print(f"stopped watching {summary['run']} ({summary['status']}); {summary['requests']} page updates served from {summary['url']}")


# --- entry point --------------------------------------------------------------------------
# --- demo --------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("the demo trains a network: install torch (pip install 'labrram[nn]' or make demo)") from None
    from .demo import DEMO_STAGES, run_demo
    from .station import StationError

    with _progress() as progress:
        task = progress.add_task("demo", total=len(DEMO_STAGES))
        seen: list[str] = []

        def stage(name: str) -> None:
            if name not in seen:
                seen.append(name)
            progress.update(task, description=name, completed=DEMO_STAGES.index(name))

        try:
            summary = run_demo(args.out, args.station, seed=args.seed, task=args.task, ablations=args.ablations, plots=not args.no_plots, stage=stage)
        except (StationError, FileExistsError) as exc:
            raise UsageError(str(exc)) from None
        progress.update(task, completed=len(DEMO_STAGES), description="done")
    return _finite_json(summary)


def _finite_json(value: Any) -> Any:
    """NaN and infinities as null, numpy scalars as numbers: strict JSON."""
    if isinstance(value, dict):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def show_demo(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    runs = summary["results"]
    table = Table("", *runs.keys(), title=f"ex-situ Bayesian transfer on {summary['chip']}")

    def row(label: str, get: Callable[[dict[str, Any]], Any], fmt: str) -> None:
        cells = []
        for r in runs.values():
            try:
                v = get(r)
            except (KeyError, TypeError):
                v = None
            cells.append("—" if v is None else fmt.format(v))
        table.add_row(label, *cells)

    row("software accuracy", lambda r: 100 * r["software_accuracy"], "{:.1f} %")
    row("hardware accuracy", lambda r: 100 * r["hardware_accuracy"], "{:.1f} %")
    where = "grid" if "grid" in next(iter(runs.values())) else "test"
    row(f"decision agreement ({where})", lambda r: 100 * r[where]["agreement"], "{:.1f} %")
    row(f"entropy correlation ({where})", lambda r: r[where]["entropy_correlation"], "{:.3f}")
    row(f"entropy |sw − hw| ({where})", lambda r: r[where]["entropy_mae"], "{:.3f} nats")
    row("posteriors inside / near domain", lambda r: f"{100 * r['posteriors_inside_domain']:.0f} % / {100 * r['posteriors_within_2delta']:.0f} %", "{}")
    row("copies, devices", lambda r: f"{r['transfer']['copies']}, {r['transfer']['devices']:,}", "{}")
    row("programming bench time", lambda r: r["transfer"]["bench_time"], "{:.3f} s")
    console.print(table)
    first = next(iter(runs.values()))
    if "mvm_check" in first:
        m = first["mvm_check"]
        console.print(f"in-array MVM on {m['points']} test points × {m['copies']} copies agrees with read-back inference on {100 * m['agreement_with_read']:.0f} % of them")
    console.print(f"done in {summary['wall_time']:.0f} s; report in {summary['out']}/ (summary.json, PNG plots, zarr runs)")


# --- montecarlo ---------------------------------------------------------------------------------
def cmd_montecarlo(args: argparse.Namespace) -> dict[str, Any]:
    from rich.markup import escape

    from .montecarlo import StudyError, load_study
    from .montecarlo_config import load_study_config, run_study_file

    try:
        trials = load_study_config(args.config).trials
    except StudyError as exc:
        raise UsageError(str(exc)) from None
    with _progress() as progress:
        task = progress.add_task("study", total=trials)

        def started(what: dict[str, Any]) -> None:
            progress.update(task, completed=what["done"], description=f"study ({what['backend']}, {what['workers']} workers)")
            if what["dashboard"]:
                progress.console.print(f"Dask dashboard: {escape(what['dashboard'])}")

        try:
            summary = run_study_file(args.config, args.out, workers=args.workers, chunk=args.chunk, resume=args.resume, backend=args.backend,
                                     scheduler=args.scheduler, progress=lambda done, total: progress.update(task, completed=done), started=started)  # fmt: skip
        except StudyError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            if Path(args.out).exists():
                _, done, _ = load_study(args.out)
                progress.console.print(f"{int(done.sum())} of {trials} trials are stored in {escape(str(args.out))}; "
                                       f"continue with: labrram montecarlo {escape(str(args.config))} --out {escape(str(args.out))} --resume")  # fmt: skip
            raise
    return _finite_json(summary)


def show_montecarlo(summary: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table("result", "shape", "mean", "std", "min", "max", title=f"{summary['trial']}: {summary['done']}/{summary['trials']} trials done")

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.6g}"

    for key, s in summary["results"].items():
        table.add_row(key, "x".join(map(str, s["shape"])) or "scalar", *(fmt(s[k]) for k in ("mean", "std", "min", "max")))
    console.print(table)
    rate = summary["trials_per_second"]
    console.print(
        f"{summary['computed']} trials computed in {summary['wall_time']:.2f} s ({fmt(rate)} trials/s) "
        f"on {summary['backend']} ({summary['workers']} workers)" + (f", scheduler {summary['scheduler']}" if summary["scheduler"] else "")
        + f"; written to {summary['out']}"
    )  # fmt: skip


# --- serve --------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> dict[str, Any]:
    import time

    from .api import serve

    server = serve(args.instrument, args.station, host=args.host, port=args.port)
    try:
        served = getattr(server, "served", None)
        if served is None:
            where = {args.instrument: getattr(server, "path", None) or server.address}
        else:
            where = {name: s.address for name, s in served.items()}
        if args.write_station:
            if served is None:
                raise UsageError("--write-station needs the whole bench served (no INSTRUMENT)")
            Path(args.write_station).write_text(server.station_text())
        err = _literal_console(stderr=True)
        for name, address in where.items():
            err.print(f"{name}: {address}")
        err.print("serving (Ctrl-C stops)" + (f"; station file {args.write_station}" if args.write_station else ""))
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return {"served": where, "station_file": args.write_station}


def show_serve(summary: dict[str, Any], console) -> None:
    console.print("stopped serving " + ", ".join(f"{n} ({a})" for n, a in summary["served"].items()))


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "info": (cmd_info, show_info, "the station, its instruments and their identification"),
    "read": (cmd_read, show_read, "read the whole array's conductance map into a zarr run"),
    "characterize": (cmd_characterize, show_characterize, "measure device statistics into a zarr run"),
    "calibrate": (cmd_calibrate, show_calibrate, "fit a device model to a characterization run"),
    "import": (cmd_import, show_import, "measurements taken elsewhere (CSV, NPZ, netCDF, zarr) -> a characterization run to calibrate"),
    "program": (cmd_program, show_program, "program conductance targets into the array"),
    "report": (cmd_report, show_report, "plots and summary of a programming run"),
    "demo": (cmd_demo, show_demo, "the tour: characterize, calibrate, train, transfer a Bayesian network, evaluate"),
    "montecarlo": (cmd_montecarlo, show_montecarlo, "run a Monte Carlo study (TOML) locally or on a Dask cluster, into a zarr store"),
    "serve": (cmd_serve, show_serve, "serve the simulated bench to other processes: instruments on TCP sockets and pseudo-terminals"),
    "watch": (cmd_watch, show_watch, "a live web page of a run (or Monte Carlo study) as it goes, on 127.0.0.1"),
}


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (exit code 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _seconds(text: str) -> float:
    """An argparse type: a finite, positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    from .targets import PATTERNS

    parser = _Parser(prog="labrram", description="Program and characterize resistive-memory chips.")
    parser.add_argument("--version", action="version", version=f"labrram {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help=COMMANDS["info"][2])
    _add_common(p)
    p = sub.add_parser("read", help=COMMANDS["read"][2])
    _add_common(p)
    p.add_argument("--out", required=True, metavar="RUN.zarr", help="run store to create")
    p = sub.add_parser("characterize", help=COMMANDS["characterize"][2])
    _add_common(p)
    p.add_argument("--kind", choices=["reram", "pcm", "passive"], help="device technology (default: what the board reports; on a simulated station, the simulated chip)")
    p.add_argument("--out", required=True, metavar="RUN.zarr", help="run store to create (or, with --resume, to continue)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted characterization from its store")
    p.add_argument("--other-chip", action="store_true", help="with --resume: continue on a chip other than the run's (explicit; recorded in the store)")
    p.add_argument("--devices", type=_count(1), help="devices to characterize (default: 256 ReRAM, 768 PCM)")
    p.add_argument("--cycles", type=_count(1), help="ReRAM: RESET/SET cycles per level (default 8)")
    p.add_argument("--seed", type=_count(0), default=0, help="seed of the device selection")
    p.add_argument("--array", metavar="ROWSxCOLS", help="simulated stations only: size of the simulated chip (e.g. 32x32)")
    p.add_argument("--array-index", type=_count(0), metavar="N", help="which of the board's arrays, 0-based (boards that carry several; default: the station's [crossbar] array)")
    p = sub.add_parser("calibrate", help=COMMANDS["calibrate"][2])
    p.add_argument("run", metavar="RUN.zarr", help="a characterization run")
    p.add_argument("--out", required=True, metavar="CAL.json", help="calibration file to write")
    p.add_argument("--plots", metavar="DIR", help="also write PNG plots into DIR")
    p.add_argument("--bootstrap", type=_count(2), default=200, help="bootstrap resamples for the intervals")
    p.add_argument("--family", choices=["auto", "gaussian", "empirical"], default="auto",
                   help="ReRAM: SET distribution programming uses: the Gaussian laws, the measured quantiles, or auto (quantiles when the Gaussian test rejects)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p = sub.add_parser("import", help=COMMANDS["import"][2])
    p.add_argument("kind", choices=["reram", "pcm", "passive"], help="the devices' kind")
    p.add_argument("file", metavar="FILE", help="the measurements: .csv (tidy), .npz, .nc or .zarr with the kind's quantities (docs/calibration.md)")
    p.add_argument("--out", required=True, metavar="RUN.zarr", help="the characterization run to create")
    p.add_argument("--setting", action="append", metavar="KEY=VALUE", help="how the data were taken: reads_per_time (pcm), scheme (passive)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a line")
    p = sub.add_parser("program", help=COMMANDS["program"][2])
    _add_common(p)
    p.add_argument("--protocol", choices=["write-verify", "single-shot", "stochastic-set", "write-verify-pcm", "tune-passive"], default="write-verify",
                   help="write-verify: the closed loop that fits the chip (ReRAM SETs aimed at the calibrated gate, PCM ladders, passive tuning); single-shot and stochastic-set: ReRAM")
    p.add_argument("--kind", choices=["reram", "pcm", "passive"], help="the chip's kind (on a simulated station: the simulated chip; on a real one: what the board must report)")
    p.add_argument("--targets", metavar="FILE.npy|PATTERN", help=f"conductance targets, S: a .npy array (NaN = leave alone) or {PATTERNS}")
    p.add_argument("--sigma", metavar="calibrated|S|FILE.npy", help="stochastic-set: wanted spread per device (default: the calibrated one)")
    p.add_argument("--setting", action="append", metavar="KEY=VALUE",
                   help="a setting of the protocol by name, SI units (e.g. reads=4 or half_width=0.5e-6 for PCM, tolerance=0.02 for ReRAM); repeatable; an unknown name is refused with the list of known ones")
    p.add_argument("--calibration", metavar="CAL.json", help="device calibration (default: the shipped one for the chip's kind)")
    p.add_argument("--out", required=True, metavar="RUN.zarr", help="run store to create (or, with --resume, to continue)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its store")
    p.add_argument("--other-chip", action="store_true", help="with --resume: continue on a chip other than the run's (explicit; recorded in the store)")
    p.add_argument("--seed", type=_count(0), default=0, help="seed of random target patterns")
    p.add_argument("--array", metavar="ROWSxCOLS", help="simulated stations only: size of the simulated chip (e.g. 32x32)")
    p.add_argument("--array-index", type=_count(0), metavar="N", help="which of the board's arrays, 0-based (boards that carry several; default: the station's [crossbar] array)")
    p = sub.add_parser("report", help=COMMANDS["report"][2])
    p.add_argument("run", metavar="RUN.zarr", help="a programming run")
    p.add_argument("--out", metavar="DIR", help="folder for the plots (default RUN-report/)")
    p.add_argument("--html", action="store_true", help="also write report.html: the plots and the summary in one self-contained file")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p = sub.add_parser("demo", help=COMMANDS["demo"][2])
    _add_common(p)
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="report folder to create (default runs/demo; must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated chip, the data and the training")
    p.add_argument("--task", choices=["moons", "iris", "wine", "breast_cancer", "digits"], default="moons", help="dataset (maps are drawn for 2-D tasks)")
    p.add_argument("--ablations", action="store_true", help="also transfer without the technological loss and a deterministic network")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p = sub.add_parser("montecarlo", help=COMMANDS["montecarlo"][2])
    p.add_argument("config", metavar="CONFIG.toml", help="the study: [study] trial, trials, seed, ... and [params]")
    p.add_argument("--out", required=True, metavar="STUDY.zarr", help="study store to create (or, with --resume, to continue)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=_count(1), help="worker processes of the local cluster (default: one per CPU)")
    p.add_argument("--chunk", type=_count(1), help="trials per task and per store chunk")
    p.add_argument("--backend", choices=["dask", "process", "serial"], help="how trials run (default: the study file's, else dask)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted study, computing only the missing trials")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p = sub.add_parser("serve", help=COMMANDS["serve"][2])
    _add_common(p)
    p.add_argument("instrument", metavar="INSTRUMENT", nargs="?", help="only this instrument of the station file (e.g. arc1); default: all, and the bench clock")
    p.add_argument("--host", default="127.0.0.1", help="interface of the TCP sockets (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_count(0), default=5025, help="first TCP port, one per instrument (0: free ports)")
    p.add_argument("--write-station", metavar="FILE", help="write a station file that drives the served bench (pyvisa-py, pyserial)")
    p.add_argument("--seconds", type=_seconds, help="stop after this many seconds (default: until Ctrl-C)")
    p = sub.add_parser("watch", help=COMMANDS["watch"][2],
                       description="Serve a live page of a run store on http://127.0.0.1:PORT/ while another process writes it (read-only; "
                                   "a finished run or a Monte Carlo study store opens too).")  # fmt: skip
    p.add_argument("run", metavar="RUN.zarr", help="a programming or characterization run store, or a Monte Carlo study store")
    p.add_argument("--port", type=_count(0), default=0, help="TCP port on 127.0.0.1 (default 0: any free port; the URL is printed)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--seconds", type=_seconds, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print a JSON summary when stopped")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    import logging

    from .api import INPUT_ERRORS
    from .signals import Terminated, install_sigterm

    # the drivers log every retry; the command reports link faults in its summary instead
    logging.getLogger("labrram").addHandler(logging.NullHandler())
    # a run store is written one chunk at a time: one zarr encoding thread is enough, and every
    # further thread keeps a malloc arena of its own (about 10 MB at 512x512); a value in the
    # environment wins. Set before zarr is first imported, which reads it then.
    if "zarr" not in sys.modules:
        os.environ.setdefault("ZARR_THREADING__MAX_WORKERS", "1")
    parser = build_parser()
    err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err.print(f"[red]error:[/red] {_one_line(exc)}")
        return 2
    run, show, _ = COMMANDS[args.command]
    try:
        with install_sigterm():  # SIGTERM stops at a safe point, like Ctrl-C
            summary = run(args)
    except (UsageError, *INPUT_ERRORS) as exc:  # bad input: nothing was sent
        err.print(f"[red]error:[/red] {_one_line(exc)}")
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        err.print(f"[yellow]{what}: outputs are off{_resume_hint(args)}[/yellow]")
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
    except Exception as exc:  # instrument and run errors: one clear line, not a traceback
        from .drivers.base import InstrumentError
        from .safety import LimitError
        from .station import ShutdownError

        if isinstance(exc, (InstrumentError, LimitError, OSError, ValueError, ModuleNotFoundError)):  # the last: an optional dependency
            err.print(f"[red]error:[/red] {type(exc).__name__}: {_one_line(exc)}{_resume_hint(args)}")
            if isinstance(exc, ShutdownError) and isinstance(exc.__cause__, KeyboardInterrupt):  # stopped, but not safe
                return 128 + exc.__cause__.signum if isinstance(exc.__cause__, Terminated) else 130
            return 1
        raise
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        show(summary, _literal_console())
    return 0


def _resume_hint(args: argparse.Namespace) -> str:
    """Where a stopped run continues (program and characterize write resumable stores)."""
    from rich.markup import escape

    out = getattr(args, "out", None)
    if args.command not in ("program", "characterize") or not out or not Path(out).exists():
        return ""
    from .store import RunStore, StoreError

    try:
        status = RunStore.open(out).attrs.get("status")
    except StoreError:
        return ""
    if status == "complete":  # the signal came as the run finished
        return f" — the run had completed: {escape(str(out))} holds it whole"
    if status != "interrupted":
        return ""
    station = f" --station {args.station}" if args.station else ""
    return f" — the run stopped cleanly (outputs off); continue it with: labrram {args.command} --resume --out {escape(str(out))}{escape(station)}"


def _one_line(exc: BaseException) -> str:
    """An error message on one line (user input can carry newlines into it)."""
    from rich.markup import escape

    return escape(" ".join(str(exc).split()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
