"""Passive 0T1R crossbar circuit: nodal analysis costs on this machine (medians).

128 x 128 array (2 m n = 32,768 unknown node voltages), 1 ohm per wire segment, sinh devices
(a = 3 /V) between 5 and 100 uS: sparse assembly and LU, one solve, a one-cell change as a
Woodbury rank-1 update versus a refactor, the exact Newton read of one cell, and whole-array
cell-by-cell reads with sneak paths (V/2, V/3) through the cached port responses, cold (port
responses built first) and warm; then the simulated chip and a 32 x 32 array.
"""

from __future__ import annotations

import numpy as np

from labrram.circuit import CrossbarCircuit
from labrram.sim.passive_chip import PassiveChip

from .common import table, timed


def _ms(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 10 else f"{t:.1f} s"


def main() -> None:
    rng = np.random.default_rng(0)
    m = n = 128
    G = rng.uniform(5e-6, 100e-6, (m, n))
    a, r_wire = 3.0, 1.0
    rows_out: list[list[str]] = []

    c = CrossbarCircuit(G, a, r_wire, r_wire)
    t, _ = timed(c.assemble, repeat=9)
    rows_out.append(["assembly (CSC, pattern + bincount)", "128x128", _ms(t)])
    t_fact, _ = timed(c.factorize, repeat=5)
    rows_out.append(["factorization (SuperLU, MMD on A+A^T)", "128x128", _ms(t_fact)])
    b = rng.standard_normal(c.assemble().shape[0])
    t, _ = timed(lambda: c.solve_linear(b), repeat=15)
    rows_out.append(["one solve", "128x128", _ms(t)])

    cells = iter(rng.integers(0, m, size=(400, 2)))

    def one_update(circuit):
        i, j = next(cells)
        circuit.update(int(i), int(j), float(rng.uniform(5e-6, 100e-6)))

    c.factorize()
    t_up, _ = timed(lambda: one_update(c), repeat=15)
    rows_out.append(["rank-1 update (Woodbury on the LU)", "128x128", _ms(t_up)])
    rows_out.append(["  vs refactor", "128x128", _ms(t_fact)])
    cp = CrossbarCircuit(G, a, r_wire, r_wire)
    t_ports, _ = timed(lambda: (setattr(cp, "_ports_cache", None), cp.port_responses()), repeat=3)
    rows_out.append(["port responses (block elimination, m+n drives)", "128x128", _ms(t_ports)])
    cp.factorize()
    t_up2, _ = timed(lambda: one_update(cp), repeat=15)
    rows_out.append(["rank-1 update incl. port responses (Sherman-Morrison)", "128x128", _ms(t_up2)])

    t, _ = timed(lambda: c.read_cell(37, 91, 0.2, "V/2"), repeat=7)
    rows_out.append(["read one cell, exact Newton (V/2)", "128x128", _ms(t)])
    t, _ = timed(lambda: c.mvm(np.full(m, 0.2)), repeat=5)
    rows_out.append(["MVM, exact Newton", "128x128", _ms(t)])

    for scheme in ("V/2", "V/3"):
        def cold(scheme=scheme):
            CrossbarCircuit(G, a, r_wire, r_wire).read_all(0.2, scheme)

        t_cold, _ = timed(cold, repeat=3)
        warm_c = CrossbarCircuit(G, a, r_wire, r_wire)
        warm_c.read_all(0.2, scheme)
        t_warm, _ = timed(lambda: warm_c.read_all(0.2, scheme), repeat=5)
        label = f"whole-array read with sneak paths, {scheme} (cold / warm)"
        rows_out.append([label, "128x128", f"{_ms(t_cold)} / {_ms(t_warm)}"])

    chip = PassiveChip(seed=0)
    rr, cc = (x.ravel() for x in np.indices((m, n)))
    t_first, _ = timed(lambda: chip.read(rr, cc, 0.2, 0.0), repeat=1)

    def pulse_then_read():
        chip.pulse_set(rng.integers(0, m, 8), rng.integers(0, n, 8), 1.6, 0.0, 1e-6)
        chip.read(rr, cc, 0.2, 0.0)

    t_next, _ = timed(pulse_then_read, repeat=5)
    label = "PassiveChip.read, all cells (first / after 8 pulses)"
    rows_out.append([label, "128x128", f"{_ms(t_first)} / {_ms(t_next)}"])

    G32 = G[:32, :32]

    def cold32():
        CrossbarCircuit(G32, a, r_wire, r_wire).read_all(0.2, "V/2")

    t_cold32, _ = timed(cold32, repeat=7)
    c32 = CrossbarCircuit(G32, a, r_wire, r_wire)
    c32.read_all(0.2, "V/2")
    t_warm32, _ = timed(lambda: c32.read_all(0.2, "V/2"), repeat=9)
    rows_out.append(["whole-array read, V/2 (cold / warm)", "32x32", f"{_ms(t_cold32)} / {_ms(t_warm32)}"])

    def chip32():
        ch = PassiveChip(32, 32, seed=1)
        r32, c32_ = (x.ravel() for x in np.indices((32, 32)))
        ch.read(r32, c32_, 0.2, 0.0)

    t, _ = timed(chip32, repeat=7)
    rows_out.append(["new PassiveChip + whole-array read", "32x32", _ms(t)])

    table(
        "Passive crossbar circuit (medians on this machine; 1 ohm/segment, a = 3 /V, G in 5-100 uS)",
        ["operation", "array", "wall"],
        rows_out,
    )

    # accuracy of the fast whole-array read against one exact Newton solve per cell
    Gs = rng.uniform(5e-6, 100e-6, (16, 16))
    cs = CrossbarCircuit(Gs, a, 3.0, 3.0)
    errs = []
    for scheme in ("V/2", "V/3", "ground", "float"):
        fast = cs.read_all(0.2, scheme, method="born")
        exact = cs.read_all(0.2, scheme, method="exact")
        errs.append(f"{scheme} {np.max(np.abs(fast / exact - 1)):.1e}")
    print(f"refactor / rank-1 update: {t_fact / t_up:.0f}x; whole-array read vs exact Newton per cell "
          f"(16x16, 3 ohm, V = 0.2 V), max relative error: " + ", ".join(errs))
