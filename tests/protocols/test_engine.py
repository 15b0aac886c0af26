"""Every plan through the one engine: interrupted (Ctrl-C, a lost reply, a read that keeps
failing) and resumed from its store, checked against the simulated chip's pulse log — every
device reached, no pulse repeated blindly, results equal to an uninterrupted run within noise."""

from __future__ import annotations

import numpy as np
import pytest

import labrram
from labrram import sim
from labrram.calibration import PassiveCharacterization, PCMCharacterization, ReRAMCharacterization
from labrram.calibration.files import default_calibration
from labrram.drivers.base import ConnectionLost
from labrram.protocols.engine import Engine, run_plan, simulate
from labrram.protocols.journal import read_log
from labrram.protocols.messages import Pulse, PulseResult, Read
from labrram.protocols.single_shot import OneShotSettings
from labrram.protocols.tune_passive import PassiveTuning
from labrram.reliability import audit, die_pulses
from labrram.station import load_station
from labrram.store import RunStore

N = 16
PASSIVE = default_calibration("passive").model


def _targets(kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "reram":
        t = rng.uniform(50e-6, 180e-6, (N, N))
        t[0, :3] = np.nan
    elif kind == "pcm":
        t = rng.uniform(2e-6, 20e-6, (N, N))
        t[1, :2] = np.nan
    else:
        t = np.full((N, N), np.nan)
        sel = rng.random((N, N)) < 0.3
        t[sel] = rng.uniform(10e-6, 80e-6, sel.sum())
    return t


#: plan -> (chip kind, how to start it on a connected station into ``out``)
PLANS = {
    "write-verify": ("reram", lambda st, out, **kw: labrram.program(_targets("reram"), st, out=out, **kw)),
    "single-shot": ("reram", lambda st, out, **kw: labrram.program(_targets("reram"), st, protocol="single-shot", settings=OneShotSettings(chunk=64), out=out, **kw)),
    "stochastic-set": ("reram", lambda st, out, **kw: labrram.program(_targets("reram"), st, protocol="stochastic-set", settings=OneShotSettings(chunk=64), out=out, **kw)),
    "write-verify-pcm": ("pcm", lambda st, out, **kw: labrram.program(_targets("pcm"), st, out=out, **kw)),
    "tune-passive": ("passive", lambda st, out, **kw: labrram.program(_targets("passive"), st, calibration=None, settings=PassiveTuning(background="measured", tolerance=0.03, abs_tolerance=1.5e-6), out=out, **kw)),
    "characterize-reram": ("reram", lambda st, out, **kw: labrram.characterize(st, settings=ReRAMCharacterization(
        n_devices=16, gates=(1.5, 1.8, 2.1), cycles=2, transistor_cells=2, read_repeats=4, relaxation_delays=(1.0, 10.0), relaxation_reads=2), out=out, **kw)),  # fmt: skip
    "characterize-pcm": ("pcm", lambda st, out, **kw: labrram.characterize(st, settings=PCMCharacterization(
        n_devices=12, targets=(4e-6, 10e-6, 18e-6), drift_times=(20.0, 200.0, 2000.0), read_repeats=4), out=out, **kw)),  # fmt: skip
    "characterize-passive": ("passive", lambda st, out, **kw: labrram.characterize(st, settings=PassiveCharacterization(n_devices=8, read_repeats=4), out=out, **kw)),
}


def _station(name: str, kind: str):
    options = {"chip_options": {"nominal": PASSIVE}} if kind == "passive" else {}
    sim.configure_bench(name, seed=11, kind=kind, rows=N, cols=N, **options)
    return load_station().with_simulation(bench=name, seed=11, kind=kind, rows=N, cols=N).connect()


def _outcome(result) -> dict:
    """What two runs of a plan should agree on, within noise."""
    if isinstance(result, labrram.Characterization):
        d = result.data
        counts = ("settings", "pulses", "level", "rows", "cols", "converged")  # indices and counts: not physics
        fields = {k: np.asarray(v, float) for k, v in vars(d).items() if k not in counts and np.size(v) > 1}
        return {"shapes": {k: v.shape for k, v in fields.items() if k not in ("ladder_amplitude", "ladder_g")},
                "median": {k: float(np.nanmedian(v)) for k, v in fields.items() if k not in ("ladder_amplitude", "ladder_g")}}  # fmt: skip
    s = result.summary()
    return {"converged": s["converged_fraction"], "pulses": s["pulses_per_device"]}


def _close(a: dict, b: dict) -> None:
    if "shapes" in a:
        assert a["shapes"] == b["shapes"]
        for k, v in a["median"].items():
            assert b["median"][k] == pytest.approx(v, rel=0.25, abs=1e-7), k
    else:
        assert abs(a["converged"] - b["converged"]) <= 0.05
        assert b["pulses"] == pytest.approx(a["pulses"], rel=0.25, abs=1.0)


@pytest.fixture(scope="module")
def references():
    """Each plan run once without interruption, on a chip identical to the interrupted ones."""
    return {}


def _reference(references, plan, tmp_path_factory):
    if plan not in references:
        kind, start = PLANS[plan]
        with _station(f"ref-{plan}", kind) as st:
            references[plan] = _outcome(start(st, tmp_path_factory.mktemp("ref") / "run.zarr"))
    return references[plan]


class Lost(ConnectionError):
    """The pulses went out; the reply did not come back."""


@pytest.mark.parametrize("how", ["ctrl-c", "lost reply", "exception"])
@pytest.mark.parametrize("plan", sorted(PLANS))
def test_every_plan_stops_cleanly_and_resumes_from_its_store(plan, how, tmp_path, tmp_path_factory, references, mocker):
    kind, start = PLANS[plan]
    reference = _reference(references, plan, tmp_path_factory)
    out = tmp_path / "run.zarr"
    with _station(f"eng-{plan}-{how}".replace(" ", ""), kind) as st:
        xb, chip = st.crossbar, st.bench.chip
        reports, calls = [], {"pulse": 0, "read": 0}

        def ctrl_c(label, done, total):
            reports.append(done)
            if how == "ctrl-c" and len(reports) == 2:
                raise KeyboardInterrupt

        real = {"set": xb.set, "reset": xb.reset, "read": xb.read}

        def lost(name):
            def call(*args, **kwargs):
                calls["pulse"] += 1
                reply = real[name](*args, **kwargs)
                if calls["pulse"] == 3:
                    raise Lost("link lost after the pulses")
                return reply

            return call

        def failing(name):
            def call(*args, **kwargs):
                calls[name] += 1
                if 3 <= calls[name] <= 5:  # 1 + the engine's 2 retries of a read: the run stops
                    raise ConnectionLost("the board stopped answering")
                return real[name](*args, **kwargs)

            return call

        if how == "lost reply":
            mocker.patch.object(xb, "set", side_effect=lost("set"))
            mocker.patch.object(xb, "reset", side_effect=lost("reset"))
        elif how == "exception":  # on a read where the plan reads, else on a pulse batch (nothing sent)
            name = "set" if plan in ("write-verify", "single-shot", "stochastic-set") else "read"
            calls[name] = 0
            mocker.patch.object(xb, name, side_effect=failing(name))
        with pytest.raises((KeyboardInterrupt, Lost, ConnectionLost)):
            start(st, out, progress=ctrl_c)
        mocker.stopall()
        store = RunStore.open(out)
        record = store.attrs["journal"]
        assert store.attrs["status"] == "interrupted" and record["stopped"]["reason"]
        in_flight = record["pending"] is not None  # a pulse batch whose fate the store cannot know
        assert in_flight == (how == "lost reply" or (how == "exception" and "set" in calls))
        assert st.bench.outputs_on() == []
        steps_before = record["steps"]
        die_before = len(chip.pulse_log)

        result = labrram.resume(out, st)
        store = RunStore.open(out)
        assert store.attrs["status"] == "complete" and store.attrs["journal"]["steps"] > steps_before
        # the store and the die agree pulse for pulse: nothing repeated blindly, nothing lost
        found = audit(chip.pulse_log.records, read_log(store), (N, N))
        assert found.ok, found.mismatched[:5]
        assert found.uncertain == 0  # every batch in flight was settled by the board's counter
        assert len(chip.pulse_log) > die_before or plan.startswith("characterize")
        if not plan.startswith("characterize"):
            die = die_pulses(chip.pulse_log.records)
            hit = np.zeros((N, N), bool)
            hit[die["row"], die["col"]] = True
            assert np.all(hit[~np.isnan(store.read("targets"))])  # every device reached
            assert result.settled == int(in_flight)
        _close(reference, _outcome(result))


def test_a_plan_can_be_stepped_by_a_fake_engine():
    """Plans hold no I/O: a fake that answers from a device model drives one to its end."""
    from labrram.protocols.write_verify import WriteVerifyReRAM

    model = default_calibration("reram").model
    targets = np.full((4, 4), 100e-6)
    plan = WriteVerifyReRAM(targets, model)
    state = np.full((4, 4), 5e-6)
    steps = []

    def answer(msg):
        steps.append(msg)
        if isinstance(msg, Pulse):
            cells = (msg.rows, msg.cols)
            state[cells] = model.median(model.transistor.compliance(msg.gate)) if msg.kind == "SET" else 5e-6
            return PulseResult(state[cells].copy(), np.ones(msg.n, np.int8))
        assert isinstance(msg, Read)
        return state[(msg.rows, msg.cols)].copy()

    result = simulate(plan, (4, 4), answer)
    assert result.converged.all() and len(steps) >= 2


def test_the_engine_refuses_pulses_beyond_a_device_budget(tmp_path):
    """A device at its per-run pulse budget gets no more pulses (status refused), counted
    across a resume; the plan gives it up."""
    from dataclasses import replace

    from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM

    with _station("budget", "reram") as st:
        xb = st.crossbar
        xb.limits = replace(xb.limits, max_pulses_per_device=3)
        model = default_calibration("reram").model
        t = _targets("reram")
        res = Engine(xb).run(WriteVerifyReRAM(t, model, ReRAMWriteVerify(start_margin=0.6)))
        die = die_pulses(st.bench.chip.pulse_log.records)
        per = np.zeros((N, N), int)
        np.add.at(per, (die["row"], die["col"]), 1)
        assert per.max() <= 3 and res.pulses.max() <= 3
        assert not res.converged[~np.isnan(t)].all()  # some needed more: given up, not pulsed


@pytest.mark.parametrize("how", ["ctrl-c", "lost reply", "exception"])
def test_the_2636b_on_instrument_loop_stops_cleanly_and_resumes(how, tmp_path, mocker):
    """The per-device loop on a Keithley 2636B is a plan too: a script whose reply was lost is
    settled as unknown and the device is read before it is pulsed again; the run completes."""
    from importlib import resources

    from labrram.protocols.smu_loop import SmuWriteVerify
    from labrram.station import parse_station

    text = resources.files("labrram").joinpath("stations", "default.toml").read_text()
    text = text.replace('driver = "keithley2400"\naddress = "GPIB0::24::INSTR"', 'driver = "keithley2600"\naddress = "GPIB0::26::INSTR"')
    bench = f"eng-smu-{how}".replace(" ", "")
    sim.configure_bench(bench, seed=3, rows=N, cols=N)
    station = parse_station(text, "<2636B station>").with_simulation(bench=bench, seed=3, rows=N, cols=N)
    model = default_calibration("reram").model
    rng = np.random.default_rng(0)
    out = tmp_path / "smu.zarr"
    with station.connect() as st:
        healthy = np.argwhere(st.bench.chip._stuck == 0)[:10]
        cells = labrram.Cells.pairs(healthy)
        targets = rng.uniform(60e-6, 160e-6, 10)
        smu = st.crossbar.smu
        real, calls = smu.run_script, {"n": 0}

        def script(*args, **kwargs):
            calls["n"] += 1
            if how == "exception" and calls["n"] == 4:
                raise ConnectionLost("the SMU stopped answering")  # before anything ran
            reply = real(*args, **kwargs)
            if how == "lost reply" and calls["n"] == 4:
                raise ConnectionLost("the reply was lost")  # the script ran
            return reply

        def ctrl_c(label, done, total):
            if how == "ctrl-c" and done >= 3:
                raise KeyboardInterrupt

        mocker.patch.object(smu, "run_script", side_effect=script)
        with pytest.raises((KeyboardInterrupt, ConnectionLost)):
            run_plan(st.crossbar, SmuWriteVerify(cells, targets, model), out, timer=st.timer, progress=ctrl_c)
        mocker.stopall()
        assert st.bench.outputs_on() == [] and st.bench.board.route is None
        record = RunStore.open(out).attrs["journal"]
        assert (record["pending"] is not None) == (how != "ctrl-c")
        result = labrram.resume(out, st)
        assert result.settled == int(how != "ctrl-c")
        assert result.converged[healthy[:, 0], healthy[:, 1]].mean() >= 0.9
        assert RunStore.open(out).attrs["status"] == "complete" and st.bench.outputs_on() == []


@pytest.mark.parametrize("width", [0, 3])
def test_journal_appender_writes_any_parts_as_whole_chunks_and_reads_them_back(tmp_path, width):
    """The run store's append-only arrays: parts of any sizes, across chunk edges, appended
    over several checkpoints, read back exactly by zarr; the array's capacity grows in whole
    chunks, and the metadata is written after the chunks it covers."""
    import zarr

    from labrram import zarrfile
    from labrram.protocols import journal

    shape = (8,) + ((width,) if width else ())
    folder = tmp_path / "a"
    zarrfile.write_array(folder, np.empty((0,) + shape[1:]), chunks=shape, shape=shape, fill_value=np.nan)
    app = journal._Appender(folder, 0)
    rng = np.random.default_rng(0)
    expected = []
    for _ in range(12):  # one checkpoint each
        parts = [rng.normal(size=(int(n),) + shape[1:]) for n in rng.integers(0, 30, size=rng.integers(1, 4))]
        written = app.append(parts)
        expected += parts
        want = np.concatenate(expected)
        arr = zarr.open_array(str(folder), mode="r")
        np.testing.assert_array_equal(np.asarray(arr[: want.shape[0]]), want)
        assert np.isnan(np.asarray(arr[want.shape[0] :])).all()  # the unused capacity reads as NaN
        assert app.length == want.shape[0] and arr.shape[0] % 8 == 0 and arr.shape[0] >= want.shape[0]
        if written and written[-1].name == "zarr.json":
            assert all(p.name != "zarr.json" for p in written[:-1])
    reopened = journal._Appender(folder, app.length)  # the tail read back
    reopened.append([np.ones((5,) + shape[1:])])
    want = np.concatenate([want, np.ones((5,) + shape[1:])])
    np.testing.assert_array_equal(reopened.read(), want)
    reopened.trim()
    np.testing.assert_array_equal(np.asarray(zarr.open_array(str(folder), mode="r")[...]), want)