"""Exact nodal-analysis model of an ``m x n`` passive crossbar with wire resistance
(:class:`CrossbarCircuit`).

An ``m x n`` crossbar is a resistor network: each row line is a chain of ``n`` wire segments
``r_row`` driven from its left end (column 0 side), each column line a chain of ``m`` segments
``r_col`` driven / sensed at its bottom end (row ``m - 1`` side); cell ``(i, j)`` joins row node
``(i, j)`` to column node ``(i, j)``. Cell ``(0, n - 1)`` is the farthest from both drivers.
Nodal analysis gives ``2 m n`` unknown node voltages (fewer when a wire resistance is 0 and its
line is one node); see :class:`CrossbarCircuit` for the algorithms. The devices are
:class:`labrram.devices.passive.PassiveDeviceModel`'s ``I = (G / a) sinh(a V)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from ..devices.passive import SCHEMES, _device_excess_slope, _scheme_base, _sinh_parts, device_current, device_excess, line_voltages
from .network import CircuitSolution, ConvergenceError, _Factor, _Partition, _Ports, _Topology, _port_responses_block
from .threads import _single_blas

_BORN_LIMIT = {"V/2": 1.2, "V/3": 1.2, "ground": 0.6, "float": 0.6}
"""Largest ``a |V|`` for which ``read_cells(method="auto")`` uses the fast corrected-linear path."""


class CrossbarCircuit:
    """Exact nodal-analysis model of an ``m x n`` passive crossbar with wire resistance.

    Parameters
    ----------
    g : array_like, shape (m, n)
        Small-signal conductances of the devices, S (> 0).
    a : float or array_like
        sinh nonlinearity of every device (scalar or (m, n)), 1/V; 0 = linear devices.
    r_row, r_col : float
        Wire resistance of one row / column segment, ohm (0 = ideal line).
    refactor_after : int
        Woodbury capacity: after this many distinct changed cells the LU is recomputed at the
        next solve (see *Updates*).
    port_update_max : int
        Largest batch of changed cells that updates the cached port responses in place;
        bigger batches drop them (rebuilt when next needed).

    Notes
    -----
    **Equations.** With unknown node voltages ``x`` (internal wire nodes and floating line
    terminals) and driven terminal voltages ``u``, Kirchhoff's current law reads ::

        F(x) = W_UU x + W_UD u + P_U^T I(v) = 0,     v = P_U x + P_D u,
        I(v) = (G / a) sinh(a v),

    ``W`` the wire Laplacian (segment conductances ``1/r``) and ``P`` the signed cell incidence.
    ``F`` is the gradient of the strictly convex co-content
    ``E(x) = 1/2 [x; u]^T W [x; u] + sum_c (G_c / a^2)(cosh(a v_c) - 1)``.

    **Linear algebra.** The small-signal matrix ``A = W_UU + P_U^T diag(G) P_U`` (SPD) is
    assembled from a precomputed pattern (``np.bincount`` scatter into CSC) and factorized once
    with SuperLU (minimum-degree ordering on ``A + A^T``). The nonlinear solve is Newton's
    method on ``E`` whose Jacobian ``J = A + P_U^T diag(G (cosh(a v) - 1)) P_U`` is never
    factorized: each Newton system is solved by conjugate gradients preconditioned with the
    factorization of ``A`` (``J - A`` is positive semidefinite, so ``A^{-1} J`` has eigenvalues
    ``>= 1`` and CG needs few iterations), followed by a line search on ``dE/dt``. The first
    Newton iterate is the linear solution, so reads at small ``a V`` take 1–3 solves.

    **Updates.** :meth:`update` changes one cell as a rank-1 modification
    ``A' = A + delta q q^T`` kept in Woodbury form on top of the existing LU (one LU solve per
    new cell, then ``O(N k)`` per solve for ``k`` changed cells). After ``refactor_after``
    distinct cells the LU is recomputed at the next solve (the refactor costs about as much as
    60 solves at 128 x 128, the Woodbury term by then about half a solve).

    **Whole-array reads.** For the V/2, V/3 and ground schemes every line is driven and a
    selection only changes the voltages of two terminals, so the exact linear response of every
    selection is a combination of the ``m + n`` unit port responses: ``Zc`` (cell voltages) and
    ``Y`` (terminal currents, summed from cell currents to avoid cancellation against the wire
    conductances). These are computed once per state, by dense block elimination when both
    wire resistances are > 0 (row chains by the Thomas algorithm, then a block-tridiagonal
    sweep over the column nodes with BLAS-3), else with the sparse LU, and kept current under
    small updates by Sherman–Morrison (``Zc' = Zc - alpha (M q) s^T``, ``Y' = Y + alpha s s^T``,
    ``s = Zc[cell]``, ``alpha = delta / (1 + delta q^T A^{-1} q)``).

    The sinh nonlinearity is a correction of that exact linear solution. First order (Born):
    the excess current ``eta_c(v0)`` of each cell at its linear voltage changes the sensed
    current by ``-Zc[c, col] eta_c`` (reciprocity). Second order: on the selected row and
    column, where the excess currents live, the IR drop they cause along the wires is fed back,
    ``v1 = v0 - K eta(v0)`` with the ideal-chain Green's functions ``K`` (a second chord
    iteration with the wire-only coupling), and ``eta(v1)`` replaces ``eta(v0)``. Cells off the
    selected lines are expanded to first order around the unselected (base) state. The result
    is exact for linear devices and for ideal wires; the error is third order in
    nonlinearity x IR drop. Measured against one exact Newton solve per cell, worst cases with
    G uniform in 5–100 uS, ``a = 3 /V``:

    ============================  ===========  ===========  ===========  ===========
    array, wire, IR-drop effect    V/2          V/3          ground       float
    ============================  ===========  ===========  ===========  ===========
    16x16, 3 ohm, a V = 0.6        1.3e-6       6e-7         8e-6         1.4e-4
    128x128, 1 ohm, 30-90 %, 0.6   1.4e-5       4e-6         2.6e-4       --
    128x128, 1 ohm, a V = 1.2      2.2e-4       5e-5         4.6e-3       --
    ============================  ===========  ===========  ===========  ===========

    ``method="auto"`` therefore uses this path for ``a |V| <= 1.2`` (V/2, V/3) or ``<= 0.6``
    (ground, float) and one exact Newton solve per cell beyond. Cost: ``O(m n (m + n))`` for
    all ``m n`` selections (``O((m n)^2 (m + n))`` for float, whose sneak paths involve every
    cell: practical up to about 64 x 64).
    """

    @classmethod
    def of_model(cls, model: Any, g: Any, **options: Any) -> "CrossbarCircuit":
        """The circuit of conductances ``g`` (S) with a
        :class:`~labrram.devices.passive.PassiveDeviceModel`'s nonlinearity and wires."""
        return cls(g, model.a, model.r_wire_row, model.r_wire_col, **options)

    def __init__(
        self,
        g,
        a=0.0,
        r_row: float = 0.0,
        r_col: float = 0.0,
        *,
        refactor_after: int = 64,
        port_update_max: int = 32,
    ) -> None:
        g = np.array(g, dtype=float)
        if g.ndim != 2 or g.size == 0:
            raise ValueError(f"conductances must be a non-empty (m, n) array, got shape {g.shape}")
        if not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        a_arr = np.asarray(a, dtype=float)
        if a_arr.ndim not in (0, 2) or (a_arr.ndim == 2 and a_arr.shape != g.shape):
            raise ValueError("a must be a scalar or have the shape of g")
        if not np.all(np.isfinite(a_arr)) or np.any(a_arr < 0):
            raise ValueError("a must be finite and >= 0 (1/V)")
        for name, r in (("r_row", r_row), ("r_col", r_col)):
            if not math.isfinite(r) or r < 0:
                raise ValueError(f"{name} must be a finite resistance >= 0 ohm, got {r}")
        if refactor_after < 1 or port_update_max < 0:
            raise ValueError("refactor_after must be >= 1 and port_update_max >= 0")
        self.m, self.n = g.shape
        self.r_row, self.r_col = float(r_row), float(r_col)
        self._a = float(a_arr) if a_arr.ndim == 0 else a_arr.copy()
        self._a_flat = self._a if a_arr.ndim == 0 else self._a.ravel()
        self._linear = bool(np.all(a_arr == 0))
        self._g = g
        self._gf = self._g.reshape(-1)  # view
        self.refactor_after = int(refactor_after)
        self.port_update_max = int(port_update_max)
        self._topo = _Topology(self.m, self.n, self.r_row, self.r_col)
        self._parts: dict[bytes, _Partition] = {}
        self._std = self._partition(np.ones(self.m + self.n, bool))
        self._factor: _Factor | None = None
        self._ports_cache: _Ports | None = None
        self._version = 0
        self._A_cache: tuple[int, bytes, sp.csc_matrix] | None = None
        self._float_factor: tuple[int, bytes, _Factor] | None = None
        self.stats = {"factorizations": 0, "port_builds": 0, "solves": 0, "sm_updates": 0}

    # --- state --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.m, self.n

    @property
    def g(self) -> np.ndarray:
        """Present small-signal conductances (read-only view), S."""
        v = self._g.view()
        v.flags.writeable = False
        return v

    @property
    def a(self):
        """sinh nonlinearity (scalar or per-device array), 1/V."""
        return self._a

    @property
    def has_port_responses(self) -> bool:
        """Whether the linear port responses of the present state are cached (fast reads)."""
        return self._ports_cache is not None

    def _check_cell(self, i: int, j: int) -> tuple[int, int]:
        i, j = int(i), int(j)
        if not (0 <= i < self.m and 0 <= j < self.n):
            raise IndexError(f"cell ({i}, {j}) outside the {self.m}x{self.n} array")
        return i, j

    @staticmethod
    def _check_scheme(scheme: str) -> str:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown bias scheme {scheme!r}; known: {list(SCHEMES)}")
        return scheme

    def _partition(self, driven: np.ndarray) -> _Partition:
        key = np.packbits(driven).tobytes() + bytes([len(driven) % 256])
        part = self._parts.get(key)
        if part is None:
            if len(self._parts) > 8:
                self._parts = {k: p for k, p in self._parts.items() if p.driven.all()}
            part = _Partition(self._topo, driven)
            self._parts[key] = part
        return part

    # --- assembly and factorization ----------------------------------------------------
    def assemble(self, driven: np.ndarray | None = None) -> sp.csc_matrix:
        """Small-signal nodal matrix ``A`` (CSC) of the unknown nodes (all lines driven by default)."""
        part = self._std if driven is None else self._partition(np.asarray(driven, bool))
        if part.nU == 0:
            return sp.csc_matrix((0, 0))
        return part.assemble(self._gf)

    def _A(self, part: _Partition) -> sp.csc_matrix:
        key = part.driven.tobytes()
        if self._A_cache is not None and self._A_cache[0] == self._version and self._A_cache[1] == key:
            return self._A_cache[2]
        A = part.assemble(self._gf)
        self._A_cache = (self._version, key, A)
        return A

    @_single_blas
    def factorize(self) -> None:
        """(Re)factorize the all-lines-driven small-signal matrix at the present conductances."""
        if self._std.nU == 0:
            self._factor = None
            return
        self._factor = _Factor(self._A(self._std), self._gf, self._std, self.refactor_after)
        self.stats["factorizations"] += 1

    def _std_factor(self) -> _Factor:
        if self._factor is None or self._factor.full:
            self.factorize()
        return self._factor

    def _linear_solver(self, part: _Partition) -> _Factor:
        if part is self._std:
            return self._std_factor()
        key = part.driven.tobytes()
        ff = self._float_factor
        if ff is None or ff[0] != self._version or ff[1] != key:
            ff = (self._version, key, _Factor(part.assemble(self._gf), self._gf, part, 1))
            self._float_factor = ff
            self.stats["factorizations"] += 1
        return ff[2]

    @_single_blas
    def solve_linear(self, b: np.ndarray) -> np.ndarray:
        """``A^{-1} b`` for the all-lines-driven small-signal matrix (LU + Woodbury)."""
        self.stats["solves"] += 1
        return self._std_factor().solve(np.asarray(b, float))

    # --- updates -------------------------------------------------------------------------
    def update(self, i: int, j: int, new_g: float) -> None:
        """Set the small-signal conductance of cell ``(i, j)`` (rank-1 update, see class notes)."""
        i, j = self._check_cell(i, j)
        self.update_cells(np.array([i]), np.array([j]), np.array([float(new_g)]))

    @_single_blas
    def update_cells(self, rows, cols, new_g) -> None:
        """Set the conductances of several cells (the last value of a repeated cell wins)."""
        rows = np.atleast_1d(np.asarray(rows, np.int64))
        cols = np.atleast_1d(np.asarray(cols, np.int64))
        new_g = np.broadcast_to(np.asarray(new_g, float), rows.shape).copy()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.m or cols.min() < 0 or cols.max() >= self.n):
            raise IndexError("cell address outside the array")
        if not np.all(np.isfinite(new_g)) or np.any(new_g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        flat = rows * self.n + cols
        # last write wins
        _, last = np.unique(flat[::-1], return_index=True)
        keep = np.sort(flat.size - 1 - last)
        flat, new_g = flat[keep], new_g[keep]
        changed = new_g != self._gf[flat]
        flat, new_g = flat[changed], new_g[changed]
        if flat.size == 0:
            return
        part = self._std
        ports = self._ports_cache
        if ports is not None and flat.size > self.port_update_max:
            self._ports_cache = ports = None
        fac = self._factor
        if fac is not None and (fac.k + sum(int(c) not in fac.index for c in flat)) > fac.capacity:
            self._factor = fac = None  # too many: refactor lazily at the new state
        if ports is None and fac is None:
            self._gf[flat] = new_g
            self._version += 1
            return
        for c, gn in zip(flat.tolist(), new_g.tolist()):
            aU, bU = int(part.cell_aU[c]), int(part.cell_bU[c])
            delta = gn - self._gf[c]
            if ports is not None:
                if aU >= 0 or bU >= 0:
                    fac = self._std_factor()
                    v0, slot = fac.column(c, aU, bU)
                    u = fac.correct(v0.copy())  # A_old^{-1} q
                    mu = (u[aU] if aU >= 0 else 0.0) - (u[bU] if bU >= 0 else 0.0)
                    up = np.concatenate([u, [0.0]])
                    Mq = up[part.cell_aU_pad] - up[part.cell_bU_pad]  # cell-voltage response to q
                else:
                    v0, mu, Mq = None, 0.0, None
                alpha = delta / (1.0 + delta * mu)
                P = self.m + self.n
                Zf = ports.Zc.reshape(-1, P)
                s = Zf[c].copy()
                if Mq is not None:
                    # in-place rank-1 update of Zc^T (Fortran view of the C-ordered array)
                    ZT = Zf.T
                    res = blas.dger(-alpha, s, Mq, a=ZT, overwrite_a=1)
                    if res is not ZT and not np.shares_memory(res, ZT):  # pragma: no cover - BLAS copied
                        Zf[:] = res.T
                ports.Y += alpha * np.outer(s, s)
                ports._pinv = None
                ports.sm_updates += 1
                self.stats["sm_updates"] += 1
                self._gf[c] = gn
                self._version += 1
                if fac is not None and (aU >= 0 or bU >= 0):
                    fac.add(c, aU, bU, gn, v0 if slot < 0 else None)
            else:
                self._gf[c] = gn
                self._version += 1
                if aU >= 0 or bU >= 0:
                    fac = self._factor
                    if fac is not None:
                        fac.add(c, aU, bU, gn)
        self._version += 1

    def set_conductances(self, g) -> None:
        """Replace every conductance (drops the factorization and port responses)."""
        g = np.asarray(g, float)
        if g.shape != (self.m, self.n):
            raise ValueError(f"expected shape {(self.m, self.n)}, got {g.shape}")
        if not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        self._g[:] = g
        self._version += 1
        self._factor = None
        self._ports_cache = None

    # --- the exact (Newton) solve ------------------------------------------------------------
    @_single_blas
    def solve(self, row_v, col_v, *, rtol: float = 1e-10, max_iter: int = 50) -> CircuitSolution:
        """Operating point for driver voltages ``row_v`` (m,) and ``col_v`` (n,); NaN = floating.

        Newton's method with conjugate-gradient inner solves preconditioned by the small-signal
        factorization (class notes). Converged when the largest KCL residual is below
        ``rtol`` times the largest cell current (or the rounding floor of the wire currents).
        """
        row_v = np.asarray(row_v, float).reshape(-1)
        col_v = np.asarray(col_v, float).reshape(-1)
        if row_v.shape != (self.m,) or col_v.shape != (self.n,):
            raise ValueError(f"need {self.m} row and {self.n} column voltages")
        u_all = np.concatenate([row_v, col_v])
        driven = ~np.isnan(u_all)
        if not driven.any():
            raise ValueError("at least one line must be driven")
        if np.any(np.isinf(u_all)):
            raise ValueError("line voltages must be finite (NaN = floating)")
        part = self._std if driven.all() else self._partition(driven)
        uD = u_all[driven]
        g, a = self._gf, self._a_flat
        iters, resid = 0, 0.0
        if part.nU == 0:
            x = np.zeros(0)
            v = part.P_D @ uD
        else:
            fac = self._linear_solver(part)
            A = self._A(part)
            C = part.coupling(g)
            x = fac.solve(-(C @ uD))
            self.stats["solves"] += 1
            base = part.W_UD @ uD
            v = part.P_U @ x + part.P_D @ uD
            if self._linear:
                F = base + part.W_UU @ x + part.P_UT @ (g * v)
                resid = float(np.max(np.abs(F), initial=0.0))
            else:
                x, v, iters, resid = self._newton(part, fac, A, base, uD, x, rtol, max_iter)
        i_cell = device_current(g, a, v)
        I_D = part.W_DU @ x + part.W_DD @ uD + part.P_DT @ i_cell if part.nU else part.W_DD @ uD + part.P_DT @ i_cell
        term = np.zeros(self.m + self.n)
        term[driven] = I_D
        # voltages of every node
        allv = np.empty(self._topo.n_all)
        allv[part.U] = x
        allv[part.D] = uD
        t = self._topo
        shape = (self.m, self.n)
        return CircuitSolution(
            row_voltages=allv[t.terminals[: self.m]].copy(),
            col_voltages=allv[t.terminals[self.m :]].copy(),
            row_node_voltages=allv[t.cell_a].reshape(shape),
            col_node_voltages=allv[t.cell_b].reshape(shape),
            cell_voltages=v.reshape(shape),
            cell_currents=i_cell.reshape(shape),
            row_currents=term[: self.m],
            col_currents=term[self.m :],
            iterations=iters,
            residual=resid,
        )

    def _newton(self, part, fac, A, base, uD, x, rtol, max_iter):
        g, a = self._gf, self._a_flat
        PD_u = part.P_D @ uD

        def residual(x):
            v = part.P_U @ x + PD_u
            return base + part.W_UU @ x + part.P_UT @ device_current(g, a, v), v

        # rounding floor of a KCL sum: wire currents g_wire * u cancel down to device currents
        u_max = max(float(np.max(np.abs(uD))), 1e-30)
        floor = 64 * np.finfo(float).eps * max(self._topo.g_wire_max, float(g.max())) * u_max
        F, v = residual(x)
        for it in range(1, max_iter + 1):
            i_scale = float(np.max(np.abs(device_current(g, a, v)), initial=0.0))
            tol = max(rtol * i_scale, floor)
            fn = float(np.max(np.abs(F)))
            if fn <= tol:
                return x, v, it - 1, fn
            dg = _device_excess_slope(g, a, v)  # J = A + P^T diag(dg) P

            def jmv(y):
                py = part.P_U @ y
                return A @ y + part.P_UT @ (dg * py)

            dx = self._pcg(jmv, -F, fac, rel=min(0.1, max(1e-6, math.sqrt(fn / max(i_scale, 1e-300)))))
            slope0 = float(F @ dx)
            if not slope0 < 0:  # not a descent direction (inexact CG): fall back to the preconditioned gradient
                dx = -fac.solve(F)
                slope0 = float(F @ dx)
            t = 1.0
            for _ in range(40):
                F_new, v_new = residual(x + t * dx)
                if float(F_new @ dx) <= 0.5 * abs(slope0):
                    break
                t *= 0.5
            x = x + t * dx
            F, v = F_new, v_new
            if t * float(np.max(np.abs(dx))) <= 1e-15 * max(float(np.max(np.abs(uD))), 1e-30):
                fn = float(np.max(np.abs(F)))
                if fn <= 100 * tol:
                    return x, v, it, fn
        fn = float(np.max(np.abs(F)))
        if fn <= 100 * max(rtol * float(np.max(np.abs(device_current(g, a, v)), initial=0.0)), floor):
            return x, v, max_iter, fn
        raise ConvergenceError(
            f"crossbar solve did not converge in {max_iter} Newton iterations (residual {fn:.3e} A)"
        )

    def _pcg(self, jmv, b, fac, rel: float, max_iter: int = 200) -> np.ndarray:
        x = np.zeros_like(b)
        r = b.copy()
        z = fac.solve(r)
        self.stats["solves"] += 1
        p = z.copy()
        rz = float(r @ z)
        bnorm = math.sqrt(abs(rz))
        if bnorm == 0:
            return x
        for _ in range(max_iter):
            Ap = jmv(p)
            pAp = float(p @ Ap)
            if pAp <= 0:
                break
            alpha = rz / pAp
            x += alpha * p
            r -= alpha * Ap
            z = fac.solve(r)
            self.stats["solves"] += 1
            rz_new = float(r @ z)
            if math.sqrt(abs(rz_new)) <= rel * bnorm:
                break
            p = z + (rz_new / rz) * p
            rz = rz_new
        return x

    # --- reads, MVM, write voltages ----------------------------------------------------------
    def read_cell(self, i: int, j: int, v_read: float, scheme: str = "V/2") -> float:
        """Current measured at column ``j`` when cell ``(i, j)`` is read at ``v_read`` (exact), A.

        The sense amplifier holds column ``j`` at 0 V; the measured current includes every
        sneak path and half-selected cell the scheme leaves on column ``j``.
        """
        i, j = self._check_cell(i, j)
        scheme = self._check_scheme(scheme)
        v_read = self._check_voltage(v_read)
        rv, cv = line_voltages(scheme, self.m, self.n, i, j, v_read)
        return float(self.solve(rv, cv).sensed_currents[j])

    @staticmethod
    def _check_voltage(v) -> float:
        v = float(v)
        if not math.isfinite(v):
            raise ValueError("voltage must be finite")
        return v

    def cell_voltages(self, i: int, j: int, v: float, scheme: str = "V/2") -> np.ndarray:
        """Voltage across every cell (row minus column node) while ``(i, j)`` is written at ``v``, V.

        Exact nonlinear solve with wire resistance; half-selected cells see about ``v/2`` (V/2)
        or ``±v/3`` (V/3) minus their IR drops.
        """
        i, j = self._check_cell(i, j)
        scheme = self._check_scheme(scheme)
        rv, cv = line_voltages(scheme, self.m, self.n, i, j, self._check_voltage(v))
        return self.solve(rv, cv).cell_voltages.copy()

    def mvm(self, v_rows, v_cols=None, *, return_solution: bool = False):
        """Column currents with rows driven at ``v_rows`` and columns held at ``v_cols`` (default 0), A.

        The current of column ``j`` is the current its virtual-ground amplifier sinks,
        ``sum_i I_ij`` in the ideal-wire limit, with IR drops and device nonlinearity exact.
        """
        v_rows = np.asarray(v_rows, float)
        if v_rows.shape != (self.m,):
            raise ValueError(f"mvm needs {self.m} row voltages, got shape {v_rows.shape}")
        v_cols = np.zeros(self.n) if v_cols is None else np.asarray(v_cols, float)
        if v_cols.shape != (self.n,):
            raise ValueError(f"mvm needs {self.n} column voltages")
        if not (np.all(np.isfinite(v_rows)) and np.all(np.isfinite(v_cols))):
            raise ValueError("mvm voltages must be finite")
        sol = self.solve(v_rows, v_cols)
        return sol if return_solution else sol.sensed_currents.copy()

    # --- whole-array reads ---------------------------------------------------------------------
    def port_responses(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear port responses ``(Zc, Y)``: ``Zc[i, j, p]`` is the voltage across cell ``(i, j)``
        and ``Y[p, q]`` the current from terminal ``p`` into the array for 1 V on terminal ``q``
        (all others at 0). Terminals are the rows, then the columns."""
        P = self._ports()
        return P.Zc, P.Y

    @_single_blas
    def _ports(self) -> _Ports:
        if self._ports_cache is not None:
            return self._ports_cache
        m, n, part = self.m, self.n, self._std
        if self.r_row > 0 and self.r_col > 0:
            Zc, Y = _port_responses_block(self._g, self.r_row, self.r_col)
        elif part.nU == 0:
            Zc = part.P_D.toarray().reshape(m, n, m + n)
            Y = part.driven_block(self._gf).toarray()
        else:
            C = part.coupling(self._gf)
            Z = -self._std_factor().solve(C.toarray())
            Zc = np.ascontiguousarray((part.P_U @ Z + part.P_D.toarray()).reshape(m, n, m + n))
            Y = part.driven_block(self._gf).toarray() + (C.T @ Z)
            Y = 0.5 * (Y + Y.T)
        # terminal currents as sums of cell currents: free of the cancellation in g_wire (1 - x_end)
        Y = np.empty((m + n, m + n))
        Y[:m] = np.einsum("ilp,il->ip", Zc, self._g)
        Y[m:] = -np.einsum("kjp,kj->jp", Zc, self._g)
        Y = 0.5 * (Y + Y.T)
        self.stats["port_builds"] += 1
        self._ports_cache = _Ports(Zc, Y)
        return self._ports_cache

    def read_all(self, v_read: float, scheme: str = "V/2", *, method: str = "auto", return_column_sq: bool = False):
        """Cell-by-cell read of the whole array: (m, n) currents measured at the selected columns, A.

        ``method``: ``"born"`` (exact linear network plus first-order nonlinear correction, see
        class notes; fast), ``"exact"`` (one Newton solve per cell; slow, for validation) or
        ``"auto"`` (``"born"`` within its validated range, see class notes). ``return_column_sq`` also returns
        ``sum_k I_kj^2`` over the cells of the sensed column (for independent per-device noise).
        """
        rows, cols = np.divmod(np.arange(self.m * self.n), self.n)
        out = self.read_cells(rows, cols, v_read, scheme, method=method, return_column_sq=return_column_sq)
        if return_column_sq:
            return out[0].reshape(self.m, self.n), out[1].reshape(self.m, self.n)
        return out.reshape(self.m, self.n)

    @_single_blas
    def read_cells(
        self,
        rows,
        cols,
        v_read: float,
        scheme: str = "V/2",
        *,
        method: str = "auto",
        return_column_sq: bool = False,
    ):
        """Currents measured when each listed cell is selected in turn (see :meth:`read_all`), A."""
        rows = np.atleast_1d(np.asarray(rows, np.int64)).ravel()
        cols = np.atleast_1d(np.asarray(cols, np.int64)).ravel()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.m or cols.min() < 0 or cols.max() >= self.n):
            raise IndexError("cell address outside the array")
        scheme = self._check_scheme(scheme)
        v = self._check_voltage(v_read)
        if method not in ("auto", "born", "exact"):
            raise ValueError(f"unknown read method {method!r}")
        if method == "auto":
            a_max = float(np.max(self._a))
            method = "born" if a_max * abs(v) <= _BORN_LIMIT[scheme] else "exact"
        if rows.size == 0:
            empty = np.zeros(0)
            return (empty, empty) if return_column_sq else empty
        if v == 0.0:
            z = np.zeros(rows.size)
            return (z, z.copy()) if return_column_sq else z
        if method == "exact":
            cur = np.empty(rows.size)
            sq = np.empty(rows.size)
            for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist())):
                rv, cv = line_voltages(scheme, self.m, self.n, i, j, v)
                sol = self.solve(rv, cv)
                cur[k] = sol.sensed_currents[j]
                sq[k] = float(np.sum(sol.cell_currents[:, j] ** 2))
        elif scheme == "float":
            cur, sq = self._born_float(rows, cols, v)
        elif self.r_row == 0 and self.r_col == 0:
            cur, sq = self._ideal_driven(rows, cols, v, scheme)
        else:
            cur, sq = self._born_driven(rows, cols, v, scheme)
        return (cur, sq) if return_column_sq else cur

    def _ideal_driven(self, rows, cols, v, scheme):
        """Closed form for ideal wires: ``I = sum_k I_kj(u_k) - I_ij(u_base) + I_ij(v)`` (exact)."""
        ur, _ = _scheme_base(scheme, v)
        g, a = self._g, self._a
        f_base = device_current(g, a, np.full_like(g, ur))
        f_sel = device_current(g, a, np.full_like(g, v))
        colsum = f_base.sum(axis=0)
        colsq = (f_base**2).sum(axis=0)
        cur = colsum[cols] - f_base[rows, cols] + f_sel[rows, cols]
        sq = colsq[cols] - f_base[rows, cols] ** 2 + f_sel[rows, cols] ** 2
        return cur, sq

    def _green_row(self) -> np.ndarray:
        """Row-wire Green's function ``K_row[l, l'] = r_row (min(l, l') + 1)``: drop of row node
        ``l`` per ampere drawn at node ``l'`` (driver at the column-0 end), ohm."""
        idx = np.arange(self.n)
        return self.r_row * (np.minimum.outer(idx, idx) + 1.0)

    def _green_col(self) -> np.ndarray:
        """Column-wire Green's function ``K_col[k, k'] = r_col (m - max(k, k'))`` (terminal at row m-1), ohm."""
        idx = np.arange(self.m)
        return self.r_col * (self.m - np.maximum.outer(idx, idx))

    def _born_driven(self, rows, cols, v, scheme):
        """Linear port solution + nonlinear correction for schemes that drive every line.

        First order: ``I = I_lin - sum_c Zc[c, col] eta_c(v0_c)`` with ``v0`` the linear cell
        voltages. Second order, on the selected row and column (where ``eta`` lives): the cell
        voltages are corrected by the IR drop the excess currents cause along the wires,
        ``v1 = v0 - K eta(v0)`` with ``K`` the Green's function of the ideal-line chains
        (``r min(l, l')`` along a row, ``r (m - max(k, k'))`` along a column), and ``eta(v1)``
        follows from ``eta(v0)`` by its Taylor series to second order in the (small) IR drop
        (a second chord iteration with the wire-only coupling).
        """
        ports = self._ports()
        m, n = self.m, self.n
        Zc, Y = ports.Zc, ports.Y
        ur, uc = _scheme_base(scheme, v)
        if scheme == "ground":
            ub = np.zeros(m + n)
        else:
            ub = np.concatenate([np.full(m, ur), np.full(n, uc)])
        dVr = v - ub[0]
        dVc = 0.0 - ub[m]
        g, a = self._g, self._a
        a_arr = np.broadcast_to(np.asarray(a, float), g.shape)
        safe_a = bool(np.all(a_arr > 0))  # eta = G (sinh(a v)/a - v) needs a > 0
        uniform = bool(np.all(ub == ub[0]))
        Yub = Y @ ub
        Krow, Kcol = self._green_row(), self._green_col()
        if uniform:
            vb = np.zeros_like(g)
        else:
            ZcF = Zc.reshape(-1, m + n)
            vb = (ZcF @ ub).reshape(m, n)
            eb = device_excess(g, a, vb)
            deb = _device_excess_slope(g, a, vb)
            krb = eb @ Krow  # (m, n): row-wire drops of the base excess currents
            kcb = Kcol @ eb  # (m, n): column-wire rises
            Zcols = ZcF[:, m:]
            T1 = Zcols.T @ eb.ravel()
            T3 = (Zcols * Zcols).T @ deb.ravel()
            if rows.size >= min(m, n):
                T2 = Zcols.T @ (deb.reshape(-1, 1) * ZcF[:, :m])  # (n, m)
                t2 = T2[cols, rows]
            else:
                t2 = np.einsum("kp,k,kp->p", Zcols[:, cols], deb.ravel(), ZcF[:, rows])
            ebT, debT, krbT = eb.T, deb.T, krb.T
        cur = np.empty(rows.size)
        sq = np.empty(rows.size)
        gT, aT, vbT = np.ascontiguousarray(g.T), np.ascontiguousarray(a_arr.T), np.ascontiguousarray(vb.T)
        jj = np.arange(n)
        W_all = np.ascontiguousarray(Zc[:, jj, m + jj].T)  # (n, m): Zc[k, j, col j]
        order = np.argsort(rows, kind="stable")
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        for grp in np.split(order, bounds):
            i = int(rows[grp[0]])
            cj = cols[grp]
            full = cj.size == n and np.array_equal(cj, jj)
            K = cj.size
            kk = np.arange(K)
            I0 = -(Yub[m + cj] + dVr * Y[m + cj, i] + dVc * Y[m + cj, m + cj])
            # linear voltages v0 of the selected row (K, n) and the selected column (K, m)
            W_r = Zc[i][:, m + cj].T
            d_r = dVc * W_r
            d_r += dVr * Zc[i, :, i]
            W_c, g_c, a_c, vb_c = (W_all, gT, aT, vbT) if full else (W_all[cj], gT[cj], aT[cj], vbT[cj])
            d_c = dVr * Zc[:, cj, i].T
            d_c += dVc * W_c
            g_r, a_r = g[i], a_arr[i]
            if uniform:
                v_r, v_c = d_r, d_c
            else:
                v_r, v_c = d_r + vb[i], d_c + vb_c
            if self._linear:
                e_r = np.zeros_like(v_r)
                e_c = np.zeros_like(v_c)
                f_c = g_c * v_c
                f_c[kk, i] = g[i, cj] * v_r[kk, cj]
            else:
                # excess currents at v0 (one exp per array: sinh, cosh and eta)
                if safe_a:
                    ex = np.exp(a_r * v_r)
                    exi = 1.0 / ex
                    sh_r, ch_r = 0.5 * (ex - exi), 0.5 * (ex + exi)
                    e_r0 = g_r * (sh_r / a_r - v_r)
                    ex = np.exp(a_c * v_c)
                    exi = 1.0 / ex
                    sh_c, ch_c = 0.5 * (ex - exi), 0.5 * (ex + exi)
                    e_c0 = g_c * (sh_c / a_c - v_c)
                else:
                    s1_r, sh_r, ch_r = _sinh_parts(a_r * v_r)
                    s1_c, sh_c, ch_c = _sinh_parts(a_c * v_c)
                    e_r0 = g_r * v_r * s1_r
                    e_c0 = g_c * v_c * s1_c
                # second order: IR drops of the excess currents along the wires
                col_drop = e_c0 @ Kcol  # rise of the selected column's nodes
                dv_r = -(e_r0 @ Krow)  # drop along the selected row
                dv_c = -col_drop
                if self.r_col > 0:
                    own_c = (self.r_col * (m - i)) * e_r0  # each row cell on its own column
                    if not uniform:
                        own_c += kcb[i] - (self.r_col * (m - i)) * eb[i]
                    own_c[kk, cj] = col_drop[kk, i]
                    dv_r -= own_c
                if self.r_row > 0:
                    own_r = (self.r_row * (cj + 1.0))[:, None] * e_c0  # each column cell on its own row
                    if not uniform:
                        own_r += krbT[cj] - (self.r_row * (cj + 1.0))[:, None] * ebT[cj]
                    dv_c -= own_r
                # eta(v0 + dv) by Taylor to second order in the IR drop (|a dv| << 1)
                e_r = e_r0 + g_r * dv_r * ((ch_r - 1.0) + (0.5 * a_r) * dv_r * sh_r)
                e_c = e_c0 + g_c * dv_c * ((ch_c - 1.0) + (0.5 * a_c) * dv_c * sh_c)
                v_r = v_r + dv_r
                v_c = v_c + dv_c
                f_c = g_c * v_c + e_c
                f_c[kk, i] = g[i, cj] * v_r[kk, cj] + e_r[kk, cj]
                if not uniform:
                    e_r -= eb[i] + deb[i] * d_r
                    e_c -= ebT[cj] + debT[cj] * d_c
            e_c[:, i] = 0.0  # the selected cell is counted with its row
            cur_k = I0 - np.einsum("kl,kl->k", W_r, e_r) - np.einsum("km,km->k", W_c, e_c)
            if not uniform:
                cur_k -= T1[cj] + dVr * t2[grp] + dVc * T3[cj]
            cur[grp] = cur_k
            sq[grp] = np.einsum("km,km->k", f_c, f_c)
        return cur, sq

    def _born_float(self, rows, cols, v, chunk: int = 256):
        """Floating unselected lines: exact linear two-terminal solve through the port matrix's
        pseudo-inverse, plus the Born term ``sum_c v0_c eta_c(v0_c) / V`` (Tellegen/reciprocity)."""
        ports = self._ports()
        m, n = self.m, self.n
        P = m + n
        Zf = ports.Zc.reshape(-1, P)
        Yp = ports.pinv()
        g, a = self._gf, self._a_flat
        cur = np.empty(rows.size)
        sq = np.empty(rows.size)
        for s0 in range(0, rows.size, chunk):
            ri = rows[s0 : s0 + chunk]
            cj = m + cols[s0 : s0 + chunk]
            reff = Yp[ri, ri] + Yp[cj, cj] - 2.0 * Yp[ri, cj]
            I0 = v / reff
            U = (Yp[:, ri] - Yp[:, cj]) * I0  # port voltages up to a constant
            U -= U[cj, np.arange(ri.size)]  # selected column at 0 V
            V0 = Zf @ U  # (mn, K) linear cell voltages
            eta = device_excess(g[:, None], a if np.ndim(a) == 0 else a[:, None], V0)
            cur[s0 : s0 + ri.size] = I0 + np.einsum("ck,ck->k", V0, eta) / v
            Vcol = V0.reshape(m, n, -1)[:, cols[s0 : s0 + chunk], np.arange(ri.size)]  # (m, K)
            gc = self._g[:, cols[s0 : s0 + chunk]]
            ac = np.broadcast_to(np.asarray(self._a, float), self._g.shape)[:, cols[s0 : s0 + chunk]]
            f = device_current(gc, ac, Vcol)
            sq[s0 : s0 + ri.size] = np.sum(f * f, axis=0)
        return cur, sq
