"""The pieces of the nodal analysis of a passive crossbar: the sparsity pattern, the solution
record, the line topology and its partition, the sparse LU factor with Woodbury updates, and
the block solver of the cached port responses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from scipy.sparse.linalg import splu

from .threads import _pool


class _Pattern:
    """A fixed sparsity pattern: COO entries scatter-added into a CSC matrix by ``np.bincount``."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> None:
        self.shape = shape
        keys = cols.astype(np.int64) * shape[0] + rows.astype(np.int64)
        uniq, self.inv = np.unique(keys, return_inverse=True)
        self.nnz = uniq.size
        self.indices = (uniq % shape[0]).astype(np.int32)
        counts = np.bincount(uniq // shape[0], minlength=shape[1])
        self.indptr = np.zeros(shape[1] + 1, dtype=np.int32)
        np.cumsum(counts, out=self.indptr[1:])

    def matrix(self, values: np.ndarray) -> sp.csc_matrix:
        data = np.bincount(self.inv, weights=values, minlength=self.nnz)
        mat = sp.csc_matrix((data, self.indices, self.indptr), shape=self.shape)
        mat.has_sorted_indices = True
        return mat


class ConvergenceError(RuntimeError):
    """The nonlinear circuit solve did not converge."""


@dataclass(frozen=True)
class CircuitSolution:
    """One operating point of the crossbar.

    Attributes
    ----------
    row_voltages, col_voltages : ndarray
        Driver-side terminal voltage of every row / column line (solved for floating lines), V.
    row_node_voltages, col_node_voltages : ndarray, shape (m, n)
        Voltage of the row / column wire at every cell, V.
    cell_voltages : ndarray, shape (m, n)
        Row node minus column node voltage of every cell, V.
    cell_currents : ndarray, shape (m, n)
        Current through every cell, row to column, A.
    row_currents, col_currents : ndarray
        Current from each line's driver into the array (0 for floating lines), A. The current a
        column's sense amplifier measures is ``-col_currents``.
    iterations : int
        Newton iterations used (0 for a linear or closed-form solve).
    residual : float
        Largest Kirchhoff current-law residual at any unknown node, A.
    """

    row_voltages: np.ndarray
    col_voltages: np.ndarray
    row_node_voltages: np.ndarray
    col_node_voltages: np.ndarray
    cell_voltages: np.ndarray
    cell_currents: np.ndarray
    row_currents: np.ndarray
    col_currents: np.ndarray
    iterations: int
    residual: float

    @property
    def sensed_currents(self) -> np.ndarray:
        """Current flowing out of each column into its (virtual-ground or driven) terminal, A."""
        return -self.col_currents


# --------------------------------------------------------------------------------------------
# topology and partitions
# --------------------------------------------------------------------------------------------
class _Topology:
    """Node numbering, wire Laplacian and cell incidence of an ``m x n`` crossbar.

    Nodes: internal row nodes (if ``r_row > 0``), internal column nodes (if ``r_col > 0``),
    then the ``m + n`` line terminals (rows first). With a zero wire resistance a line is one
    node: its terminal.
    """

    def __init__(self, m: int, n: int, r_row: float, r_col: float) -> None:
        self.m, self.n = m, n
        mn = m * n
        ii, ll = np.divmod(np.arange(mn), n)
        n_r = mn if r_row > 0 else 0
        n_c = mn if r_col > 0 else 0
        self.n_int = n_r + n_c
        self.n_all = self.n_int + m + n
        term_r = self.n_int + np.arange(m)
        term_c = self.n_int + m + np.arange(n)
        self.terminals = np.concatenate([term_r, term_c])
        self.cell_a = np.arange(mn) if n_r else term_r[ii]
        self.cell_b = n_r + np.arange(mn) if n_c else term_c[ll]
        e_u, e_v, e_g = [], [], []
        if n_r:
            g = 1.0 / r_row
            node = np.arange(mn).reshape(m, n)
            e_u += [term_r, node[:, :-1].ravel()]
            e_v += [node[:, 0], node[:, 1:].ravel()]
            e_g += [np.full(m, g), np.full(m * (n - 1), g)]
        if n_c:
            g = 1.0 / r_col
            node = n_r + np.arange(mn).reshape(m, n)
            e_u += [node[:-1, :].ravel(), node[-1, :]]
            e_v += [node[1:, :].ravel(), term_c]
            e_g += [np.full((m - 1) * n, g), np.full(n, g)]
        if e_u:
            self.edge_u = np.concatenate(e_u).astype(np.int64)
            self.edge_v = np.concatenate(e_v).astype(np.int64)
            self.edge_g = np.concatenate(e_g)
        else:
            self.edge_u = self.edge_v = np.zeros(0, np.int64)
            self.edge_g = np.zeros(0)
        self.g_wire_max = float(self.edge_g.max(initial=0.0))


class _Partition:
    """Unknown / driven split of the nodes for one set of driven line terminals.

    ``U`` = internal nodes and floating terminals (unknowns), ``D`` = driven terminals. Holds the
    wire blocks ``W_UU, W_UD, W_DU, W_DD``, the cell incidences ``P_U, P_D`` (``v = P_U x + P_D u``)
    and the pattern that assembles the small-signal matrix ``A = W_UU + P_U^T diag(G) P_U``.
    """

    def __init__(self, topo: _Topology, driven: np.ndarray) -> None:
        self.topo = topo
        self.driven = driven.copy()
        n_all = topo.n_all
        is_d = np.zeros(n_all, bool)
        is_d[topo.terminals[driven]] = True
        self.U = np.flatnonzero(~is_d)
        self.D = topo.terminals[driven]
        self.nU, self.nD = self.U.size, self.D.size
        pos = np.full(n_all, -1, np.int64)
        pos[self.U] = np.arange(self.nU)
        posd = np.full(n_all, -1, np.int64)
        posd[self.D] = np.arange(self.nD)
        mn = topo.m * topo.n
        cells = np.arange(mn)
        a_u, b_u = pos[topo.cell_a], pos[topo.cell_b]
        a_d, b_d = posd[topo.cell_a], posd[topo.cell_b]
        self.cell_aU, self.cell_bU = a_u, b_u  # -1 when that side is driven
        self.cell_aU_pad = np.where(a_u >= 0, a_u, self.nU)  # index of a zero pad entry instead of -1
        self.cell_bU_pad = np.where(b_u >= 0, b_u, self.nU)
        # incidences
        def incidence(pa, pb, ncols):
            ra, rb = pa >= 0, pb >= 0
            r = np.concatenate([cells[ra], cells[rb]])
            c = np.concatenate([pa[ra], pb[rb]])
            d = np.concatenate([np.ones(ra.sum()), -np.ones(rb.sum())])
            return sp.csr_matrix((d, (r, c)), shape=(mn, ncols))

        self.P_U = incidence(a_u, b_u, self.nU)
        self.P_D = incidence(a_d, b_d, self.nD)
        self.P_UT = self.P_U.T.tocsr()
        self.P_DT = self.P_D.T.tocsr()
        # wire blocks
        u, v, g = topo.edge_u, topo.edge_v, topo.edge_g
        L = sp.csr_matrix(
            (np.concatenate([g, g, -g, -g]), (np.concatenate([u, v, u, v]), np.concatenate([u, v, v, u]))),
            shape=(n_all, n_all),
        )
        self.W_UU = L[self.U][:, self.U].tocsr()
        self.W_UD = L[self.U][:, self.D].tocsr()
        self.W_DU = L[self.D][:, self.U].tocsr()
        self.W_DD = L[self.D][:, self.D].tocsr()
        # assembly pattern of A = W_UU + P_U^T diag(G) P_U
        wc = self.W_UU.tocoo()
        both = (a_u >= 0) & (b_u >= 0)
        ra, rb = a_u >= 0, b_u >= 0
        rows = [wc.row, a_u[ra], b_u[rb], a_u[both], b_u[both]]
        cols = [wc.col, a_u[ra], b_u[rb], b_u[both], a_u[both]]
        self._w_data = wc.data
        self._cells_ra, self._cells_rb, self._cells_both = cells[ra], cells[rb], cells[both]
        self.pattern = _Pattern(np.concatenate(rows), np.concatenate(cols), (self.nU, self.nU)) if self.nU else None

    def assemble(self, g_flat: np.ndarray) -> sp.csc_matrix:
        """Small-signal nodal matrix ``A`` at conductances ``g_flat`` (CSC)."""
        gb = g_flat[self._cells_both]
        values = np.concatenate([self._w_data, g_flat[self._cells_ra], g_flat[self._cells_rb], -gb, -gb])
        return self.pattern.matrix(values)

    def coupling(self, g_flat: np.ndarray) -> sp.csr_matrix:
        """Small-signal ``C = L[U, D] = W_UD + P_U^T diag(G) P_D``."""
        return (self.W_UD + self.P_UT @ sp.diags(g_flat) @ self.P_D).tocsr()

    def driven_block(self, g_flat: np.ndarray) -> sp.csr_matrix:
        """Small-signal ``E = L[D, D] = W_DD + P_D^T diag(G) P_D``."""
        return (self.W_DD + self.P_DT @ sp.diags(g_flat) @ self.P_D).tocsr()


# --------------------------------------------------------------------------------------------
# factorization with Woodbury updates
# --------------------------------------------------------------------------------------------
_SPLU_OPTIONS = dict(SymmetricMode=True, Equil=False, IterRefine="NOREFINE")


class _Factor:
    """Sparse LU of ``A0`` plus a Woodbury correction for cells changed since.

    ``A = A0 + U diag(delta) U^T`` with ``U`` the columns ``q_c = e_a(c) - e_b(c)`` of the changed
    cells. ``A^{-1} b = y - V (I + diag(delta) Q)^{-1} diag(delta) U^T y`` with ``y = A0^{-1} b``,
    ``V = A0^{-1} U`` and ``Q = U^T V`` (``k x k``), so each solve costs one LU solve plus
    ``O(N k)``. Repeated changes of one cell reuse its column.
    """

    def __init__(self, A: sp.csc_matrix, g_ref: np.ndarray, part: _Partition, capacity: int) -> None:
        self.lu = splu(A, permc_spec="MMD_AT_PLUS_A", options=_SPLU_OPTIONS)
        self.part = part
        self.N = A.shape[0]
        self.g_ref = g_ref.copy()
        self.capacity = capacity
        self.index: dict[int, int] = {}
        self.cells = np.zeros(capacity, np.int64)
        self.ea = np.zeros(capacity, np.int64)
        self.eb = np.zeros(capacity, np.int64)
        self.delta = np.zeros(capacity)
        self.V = np.zeros((self.N + 1, capacity))  # last row stays 0: the index of a driven side
        self.Q = np.zeros((capacity, capacity))
        self.k = 0

    @property
    def full(self) -> bool:
        return self.k >= self.capacity

    def base_solve(self, B: np.ndarray) -> np.ndarray:
        """``A0^{-1} B`` (columns solved in parallel threads: SuperLU releases the GIL)."""
        if B.ndim == 1:
            return self.lu.solve(B)
        K = B.shape[1]
        if K < 4:
            return np.column_stack([self.lu.solve(np.ascontiguousarray(B[:, c])) for c in range(K)])
        out = np.empty((self.N, K), order="F")

        def work(c: int) -> None:
            out[:, c] = self.lu.solve(np.ascontiguousarray(B[:, c]))

        list(_pool().map(work, range(K)))
        return out

    def _ut(self, Y: np.ndarray) -> np.ndarray:
        """``U^T Y`` for the changed cells (``Y`` padded with a zero row)."""
        k = self.k
        Yp = np.concatenate([Y, np.zeros((1,) + Y.shape[1:])], axis=0)
        return Yp[self.ea[:k]] - Yp[self.eb[:k]]

    def correct(self, Y: np.ndarray) -> np.ndarray:
        """Turn ``A0^{-1} B`` into ``A^{-1} B`` (in place)."""
        k = self.k
        if k == 0:
            return Y
        d = self.delta[:k]
        H = np.eye(k) + d[:, None] * self.Q[:k, :k]
        T = self._ut(Y)
        coef = np.linalg.solve(H, d[:, None] * T if T.ndim == 2 else d * T)
        Y -= self.V[: self.N, :k] @ coef
        return Y

    def solve(self, B: np.ndarray) -> np.ndarray:
        return self.correct(self.base_solve(B))

    def column(self, cell: int, aU: int, bU: int) -> tuple[np.ndarray, int]:
        """``A0^{-1} q_cell`` (from the Woodbury store if the cell is in it) and its slot or -1."""
        slot = self.index.get(cell, -1)
        if slot >= 0:
            return self.V[: self.N, slot].copy(), slot
        q = np.zeros(self.N)
        if aU >= 0:
            q[aU] += 1.0
        if bU >= 0:
            q[bU] -= 1.0
        return self.lu.solve(q), -1

    def add(self, cell: int, aU: int, bU: int, g_new: float, v0: np.ndarray | None = None) -> None:
        """Record that cell ``cell`` now has conductance ``g_new`` (``v0 = A0^{-1} q`` if known)."""
        slot = self.index.get(cell, -1)
        if slot < 0:
            if self.full:
                raise RuntimeError("Woodbury store full: refactor first")
            if v0 is None:
                v0, _ = self.column(cell, aU, bU)
            slot = self.k
            self.k += 1
            self.index[cell] = slot
            self.cells[slot] = cell
            self.ea[slot] = aU if aU >= 0 else self.N
            self.eb[slot] = bU if bU >= 0 else self.N
            self.V[: self.N, slot] = v0
            col = self.V[self.ea[: self.k], slot] - self.V[self.eb[: self.k], slot]  # U^T A0^-1 q
            self.Q[: self.k, slot] = col
            self.Q[slot, : self.k] = col
        self.delta[slot] = g_new - self.g_ref[cell]


# --------------------------------------------------------------------------------------------
# port responses by dense block elimination (both wire resistances > 0)
# --------------------------------------------------------------------------------------------
def _thomas_factor(d: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """Thomas factors of tridiagonal systems: diagonal ``d`` (batch, chain), off-diagonals ``-g``."""
    n = d.shape[1]
    cp = np.empty_like(d)
    inv = np.empty_like(d)
    inv[:, 0] = 1.0 / d[:, 0]
    cp[:, 0] = -g * inv[:, 0]
    for l in range(1, n):
        inv[:, l] = 1.0 / (d[:, l] + g * cp[:, l - 1])
        cp[:, l] = -g * inv[:, l]
    return cp, inv


def _thomas_solve(cp: np.ndarray, inv: np.ndarray, g: float, B: np.ndarray) -> np.ndarray:
    """Solve in place; ``B`` has shape (batch, chain, rhs)."""
    n = B.shape[1]
    B[:, 0] *= inv[:, 0, None]
    for l in range(1, n):
        t = B[:, l]
        t += g * B[:, l - 1]
        t *= inv[:, l, None]
    for l in range(n - 2, -1, -1):
        B[:, l] -= cp[:, l, None] * B[:, l + 1]
    return B


def _spd_inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix (Cholesky; LU if that fails)."""
    c, info = lapack.dpotrf(M, lower=1, clean=0)
    if info == 0:
        inv, info = lapack.dpotri(c, lower=1, overwrite_c=1)
        if info == 0:
            lower = np.tril(inv)
            return lower + np.tril(inv, -1).T
    return np.linalg.inv(M)


def _port_responses_block(G: np.ndarray, r_row: float, r_col: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-voltage responses ``Zc`` (m, n, m+n) and port matrix ``Y`` of the linear network.

    Eliminates every row chain (tridiagonal ``R_i = g_row T + diag(G_i)``, Thomas algorithm),
    leaving the column nodes as a block-tridiagonal system with dense ``n x n`` blocks
    ``C_i = diag(G_i + column-wire terms) - diag(G_i) R_i^{-1} diag(G_i)`` and off-diagonal
    blocks ``-g_col I``, solved by block Gaussian elimination (``S_i = C_i - g_col^2 S_{i-1}^{-1}``)
    for all ``m + n`` unit port drives at once (BLAS-3); the row nodes follow from
    ``r_i = R_i^{-1} (g_row u_i e_0 + G_i c_i)``.
    """
    m, n = G.shape
    P = m + n
    gr, gc = 1.0 / r_row, 1.0 / r_col
    tdiag = np.full(n, 2.0)
    tdiag[-1] = 1.0
    if n == 1:
        tdiag[0] = 1.0
    d = gr * tdiag[None, :] + G  # (m, n)
    cp, inv = _thomas_factor(d, gr)
    idx = np.arange(n)
    # X = R_i^{-1} [diag(G_i) | g_row e_0]
    B = np.zeros((m, n, n + 1))
    B[:, idx, idx] = G
    B[:, 0, n] = gr
    X = _thomas_solve(cp, inv, gr, B)
    C = -(G[:, :, None] * X[:, :, :n])  # -diag(G) R^{-1} diag(G): (i, l, l')
    cd = np.full(m, 2.0 * gc)
    cd[0] = gc
    C[:, idx, idx] += G + cd[:, None]
    # right-hand sides, then forward elimination and back substitution in place (y -> c)
    c = np.zeros((m, n, P))
    c[np.arange(m), :, np.arange(m)] = G * X[:, :, n]
    c[m - 1, idx, m + idx] += gc
    Sinv = np.empty((m, n, n))
    for i in range(m):
        if i == 0:
            sig = C[0]
        else:
            sig = C[i] - (gc * gc) * Sinv[i - 1]
            c[i, :, : i + 1] += gc * (Sinv[i - 1] @ c[i - 1, :, : i + 1])
        Sinv[i] = _spd_inverse(sig)
    c[m - 1] = Sinv[m - 1] @ c[m - 1]
    for i in range(m - 2, -1, -1):
        rhs = c[i]
        rhs += gc * c[i + 1]
        c[i] = Sinv[i] @ rhs
    # row nodes, then cell voltages r - c (in place)
    Zc = G[:, :, None] * c
    Zc[np.arange(m), 0, np.arange(m)] += gr
    _thomas_solve(cp, inv, gr, Zc)  # now the row node voltages
    Y = np.empty((P, P))
    Y[:m] = -gr * Zc[:, 0, :]
    Y[np.arange(m), np.arange(m)] += gr
    Y[m:] = -gc * c[m - 1]
    Y[m + idx, m + idx] += gc
    Zc -= c
    Y = 0.5 * (Y + Y.T)
    return Zc, Y


class _Ports:
    """Linear port responses: ``Zc[i, j, p]`` cell voltage and ``Y[p, q]`` terminal current per unit drive."""

    def __init__(self, Zc: np.ndarray, Y: np.ndarray) -> None:
        self.Zc = Zc  # C-contiguous (m, n, P)
        self.Y = Y
        self.sm_updates = 0
        self._pinv: np.ndarray | None = None

    def pinv(self) -> np.ndarray:
        """Moore–Penrose inverse of the (singular, Laplacian) port matrix ``Y``."""
        if self._pinv is None:
            P = self.Y.shape[0]
            J = np.full((P, P), 1.0 / P)
            self._pinv = np.linalg.inv(self.Y + J) - J
        return self._pinv


