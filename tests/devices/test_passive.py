"""Passive TiO2 crossbar: device model and circuit, checked against networks solved here by
hand or by an independent dense Kirchhoff solver (complex-step Newton) written in this file."""

import math

import numpy as np
import pytest

from labrram.circuit import CrossbarCircuit
from labrram.devices.passive import (
    SCHEMES,
    PassiveDeviceModel,
    device_conductance,
    device_current,
    device_excess,
    line_voltages,
)

RNG = np.random.default_rng(20240611)


# ------------------------------------------------------------------------------------------
# an independent reference: dense nodal analysis with explicit loops
# ------------------------------------------------------------------------------------------
def _f(g, a, v):
    return g * v if a == 0 else (g / a) * np.sinh(a * v)


def dense_reference(G, r_row, r_col, row_v, col_v, a=0.0):
    """Node voltages and terminal currents of the crossbar by Newton on hand-written KCL.

    Row i: terminal -- r_row -- node (i,0) -- r_row -- ... -- node (i,n-1).
    Column j: node (0,j) -- r_col -- ... -- node (m-1,j) -- r_col -- terminal.
    NaN terminal voltage = floating (its voltage becomes an unknown, no current).
    Returns (row nodes, col nodes, row terminal currents, col terminal currents into the array).
    """
    m, n = G.shape
    row_v, col_v = np.asarray(row_v, float), np.asarray(col_v, float)
    fr = [i for i in range(m) if math.isnan(row_v[i])]
    fc = [j for j in range(n) if math.isnan(col_v[j])]
    N = 2 * m * n + len(fr) + len(fc)

    def unpack(x):
        r = x[: m * n].reshape(m, n)
        c = x[m * n : 2 * m * n].reshape(m, n)
        tr = row_v.astype(x.dtype).copy()
        tc = col_v.astype(x.dtype).copy()
        k = 2 * m * n
        for i in fr:
            tr[i] = x[k]
            k += 1
        for j in fc:
            tc[j] = x[k]
            k += 1
        return r, c, tr, tc

    def F(x):
        r, c, tr, tc = unpack(x)
        out = np.zeros(N, dtype=x.dtype)
        for i in range(m):
            for l in range(n):
                left = tr[i] if l == 0 else r[i, l - 1]
                s = (r[i, l] - left) / r_row + _f(G[i, l], a, r[i, l] - c[i, l])
                if l < n - 1:
                    s += (r[i, l] - r[i, l + 1]) / r_row
                out[i * n + l] = s
                s = -_f(G[i, l], a, r[i, l] - c[i, l])
                down = tc[l] if i == m - 1 else c[i + 1, l]
                s += (c[i, l] - down) / r_col
                if i > 0:
                    s += (c[i, l] - c[i - 1, l]) / r_col
                out[m * n + i * n + l] = s
        k = 2 * m * n
        for i in fr:
            out[k] = (tr[i] - r[i, 0]) / r_row
            k += 1
        for j in fc:
            out[k] = (tc[j] - c[m - 1, j]) / r_col
            k += 1
        return out

    x = np.zeros(N)
    for _ in range(60):
        Fx = F(x)
        J = np.empty((N, N))
        h = 1e-30
        for k in range(N):  # complex-step derivative: exact to rounding
            xc = x.astype(complex)
            xc[k] += 1j * h
            J[:, k] = F(xc).imag / h
        dx = np.linalg.solve(J, -Fx)
        x += dx
        if np.max(np.abs(dx)) < 1e-16:
            break
    r, c, tr, tc = unpack(x)
    I_rows = (tr - r[:, 0]) / r_row
    I_cols = (tc - c[m - 1, :]) / r_col
    return r, c, I_rows, I_cols


# ------------------------------------------------------------------------------------------
# device model
# ------------------------------------------------------------------------------------------
def test_iv_is_sinh_with_small_signal_conductance_g():
    g, a = 40e-6, 3.0
    v = np.array([-1.0, -0.2, 1e-9, 0.05, 0.3, 1.5])
    np.testing.assert_allclose(device_current(g, a, v), (g / a) * np.sinh(a * v), rtol=1e-13)
    np.testing.assert_allclose(device_conductance(g, a, v), g * np.cosh(a * v), rtol=1e-13)
    # small-signal conductance is G; a = 0 is ohmic
    assert device_current(g, a, 1e-9) / 1e-9 == pytest.approx(g, rel=1e-12)
    np.testing.assert_allclose(device_current(g, 0.0, v), g * v, rtol=0, atol=0)
    # the excess current sinh(x) - x stays accurate where it cancels: compare with its series
    x = np.array([1e-6, 1e-3, 0.0999, 0.1001, 0.5, 2.0])
    ref = np.array([math.fsum(t ** (2 * k + 1) / math.factorial(2 * k + 1) for k in range(1, 30)) for t in x])
    np.testing.assert_allclose(device_excess(1.0, 1.0, x), ref, rtol=1e-12)


def test_model_validation_and_serialization():
    m = PassiveDeviceModel()
    assert PassiveDeviceModel.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="unknown"):
        PassiveDeviceModel.from_dict({**m.to_dict(), "stuck_fraction": 0.1})
    with pytest.raises(ValueError, match="g_min"):
        PassiveDeviceModel(g_min=2e-4, g_max=1e-4)
    with pytest.raises(ValueError):
        PassiveDeviceModel(v_set=-1.0)
    with pytest.raises(ValueError):
        PassiveDeviceModel(a=float("nan"))
    with pytest.raises(ValueError):
        PassiveDeviceModel(r_wire_row=-1.0)


def test_variant_is_seeded_and_varies():
    m = PassiveDeviceModel()
    a = m.variant(np.random.default_rng(3))
    b = m.variant(np.random.default_rng(3))
    c = m.variant(np.random.default_rng(4))
    assert a == b != c
    assert a.g_min < a.g_max
    assert abs(a.v_set / m.v_set - 1) < 0.15


def test_pulse_response_thresholds_overdrive_and_window():
    m = PassiveDeviceModel()
    g0 = np.array([20e-6])
    # below threshold: nothing; SET raises, RESET lowers
    assert m.pulse_response(g0, 0.99 * m.v_set, 1e-6)[0] == g0[0]
    assert m.pulse_response(g0, -0.99 * m.v_reset, 1e-6)[0] == g0[0]
    up = m.pulse_response(g0, 1.5, 1e-6)[0]
    down = m.pulse_response(g0, -1.6, 1e-6)[0]
    assert up > g0[0] > down >= m.g_min
    # a larger overdrive moves further
    assert m.pulse_response(g0, 1.8, 1e-6)[0] > up
    # state-dependent window: the same pulse moves a device near g_max less
    step_low = m.pulse_response(10e-6, 1.5, 1e-6) - 10e-6
    step_high = m.pulse_response(90e-6, 1.5, 1e-6) - 90e-6
    assert 0 < step_high < step_low
    # exact integration: two half-width pulses equal one full pulse (any window exponent)
    for p in (1.0, 2.0, 0.5):
        mp = PassiveDeviceModel(window_p=p)
        once = mp.pulse_response(g0, 1.6, 2e-6)
        twice = mp.pulse_response(mp.pulse_response(g0, 1.6, 1e-6), 1.6, 1e-6)
        np.testing.assert_allclose(once, twice, rtol=1e-12)
    # the scalar version used in sequential loops is the same law
    for p in (1.0, 2.0, 0.5):
        mp = PassiveDeviceModel(window_p=p)
        for g, d in ((20e-6, 0.3), (20e-6, -0.3), (99e-6, 2.0), (6e-6, -5.0), (30e-6, 0.0)):
            assert mp.advance_scalar(g, d) == pytest.approx(float(mp.advance(g, d)), rel=1e-12)
    # closed form for p = 1: 1 - x(t) = (1 - x0) exp(-r t)
    x0 = (20e-6 - m.g_min) / (m.g_max - m.g_min)
    r = m.rate_set * ((1.5 - m.v_set) / m.v_set) ** m.gamma_set
    x1 = 1 - (1 - x0) * math.exp(-r * 1e-6)
    assert up == pytest.approx(m.g_min + x1 * (m.g_max - m.g_min), rel=1e-12)


def test_tuning_imprecision_statistics():
    m = PassiveDeviceModel(tuning_sigma_rel=0.02, tuning_tolerance_rel=0.04)
    rng = np.random.default_rng(0)
    target = np.full(200_000, 40e-6)
    g = m.sample_tuned(target, rng)
    eps = g / target - 1
    assert np.all(np.abs(eps) <= 0.04 + 1e-15)  # inside the tolerance band
    c = 0.04 / 0.02  # truncated normal at +-2 sigma
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    Z = math.erf(c / math.sqrt(2))
    sd_expected = 0.02 * math.sqrt(1 - 2 * c * phi / Z)
    assert abs(np.mean(eps)) < 3 * sd_expected / math.sqrt(eps.size) + 1e-5
    assert np.std(eps) == pytest.approx(sd_expected, rel=0.01)
    # targets outside the window are clipped to it
    assert np.all(m.sample_tuned(np.array([1e-9, 1.0]), rng) >= m.g_min)
    # a switching pulse lands with the same spread around its nominal response
    m0 = PassiveDeviceModel(rate_c2c_rel=0.0, tuning_sigma_rel=0.02, tuning_tolerance_rel=0.04)
    g_p = m0.sample_pulse(np.full(50_000, 20e-6), 1.5, 1e-6, rng)
    nominal = m0.pulse_response(20e-6, 1.5, 1e-6)
    assert np.std(g_p / nominal - 1) == pytest.approx(sd_expected, rel=0.03)
    # and a sub-threshold pulse does not change anything, not even by noise
    np.testing.assert_array_equal(m0.sample_pulse(np.full(10, 20e-6), 0.5, 1e-6, rng), 20e-6)


def test_half_select_disturb_is_small_below_threshold():
    m = PassiveDeviceModel()
    v_write = 1.6  # a typical SET amplitude; half-selected cells see V/2 = 0.8 V or V/3
    ls, lr = m.disturb_lambda(np.array([v_write / 2, v_write / 3, -v_write / 3, m.v_set, 0.0]), 1e-6)
    assert ls[0] < 1e-3 and ls[1] < 1e-6 and lr[2] < 1e-6  # events per pulse
    assert ls[3] == 0 and ls[4] == 0 and lr[0] == 0  # at threshold it switches instead
    # one event moves the state by a small fraction of the window, in the field's direction
    g = np.array([30e-6, 30e-6])
    moved = m.apply_disturb(g, np.array([1, 0]), np.array([0, 1]))
    assert moved[0] > 30e-6 > moved[1]
    assert abs(moved[0] - 30e-6) < 0.02 * (m.g_max - m.g_min)


# ------------------------------------------------------------------------------------------
# circuit: hand-solvable networks
# ------------------------------------------------------------------------------------------
G22 = np.array([[10e-6, 20e-6], [30e-6, 40e-6]])


def test_2x2_ideal_wires_by_hand():
    c = CrossbarCircuit(G22)
    V = 0.3
    (g00, g01), (g10, g11) = G22
    assert c.read_cell(0, 0, V, "ground") == pytest.approx(g00 * V, rel=1e-14)
    assert c.read_cell(0, 0, V, "V/2") == pytest.approx(g00 * V + g10 * V / 2, rel=1e-14)
    assert c.read_cell(0, 0, V, "V/3") == pytest.approx(g00 * V + g10 * V / 3, rel=1e-14)
    # floating: the sneak path (0,1) -> (1,1) -> (1,0) in series with the selected cell's lines
    sneak = 1 / (1 / g01 + 1 / g11 + 1 / g10)
    assert c.read_cell(0, 0, V, "float") == pytest.approx((g00 + sneak) * V, rel=1e-12)
    # whole-array reads agree with the single reads
    for scheme in SCHEMES:
        full = c.read_all(V, scheme)
        single = np.array([[c.read_cell(i, j, V, scheme) for j in range(2)] for i in range(2)])
        np.testing.assert_allclose(full, single, rtol=1e-12)


def test_1x1_with_wires_by_hand():
    c = CrossbarCircuit([[25e-6]], 0.0, 3.0, 2.0)
    assert c.read_cell(0, 0, 0.2, "ground") == pytest.approx(0.2 / (3.0 + 1 / 25e-6 + 2.0), rel=1e-12)


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (2, 3)])
@pytest.mark.parametrize("wires", [(1.5, 2.5), (0.0, 4.0), (4.0, 0.0)])
def test_linear_networks_match_dense_kirchhoff(shape, wires):
    G = RNG.uniform(5e-6, 100e-6, shape)
    m, n = shape
    c = CrossbarCircuit(G, 0.0, *wires)
    r_row, r_col = (w if w > 0 else 1e-9 for w in wires)  # the reference needs a resistor
    for scheme in SCHEMES:
        full = c.read_all(0.25, scheme)
        for i in range(m):
            for j in range(n):
                rv, cv = line_voltages(scheme, m, n, i, j, 0.25)
                _, _, _, I_cols = dense_reference(G, r_row, r_col, rv, cv)
                ref = -I_cols[j]
                tol = 1e-11 if min(wires) > 0 else 1e-6  # 1 nano-ohm stand-in for an ideal line
                assert c.read_cell(i, j, 0.25, scheme) == pytest.approx(ref, rel=tol)
                assert full[i, j] == pytest.approx(ref, rel=tol)


def test_mvm_with_wires_matches_dense_kirchhoff_and_ideal_limit():
    G = RNG.uniform(5e-6, 100e-6, (3, 4))
    v = np.array([0.1, -0.05, 0.2])
    c = CrossbarCircuit(G, 0.0, 2.0, 3.0)
    _, _, _, I_cols = dense_reference(G, 2.0, 3.0, v, np.zeros(4))
    np.testing.assert_allclose(c.mvm(v), -I_cols, rtol=1e-11)
    np.testing.assert_allclose(CrossbarCircuit(G).mvm(v), G.T @ v, rtol=1e-14)
    # nonlinear, ideal wires: a plain sum of sinh currents
    expected = ((G / 3.0) * np.sinh(3.0 * v[:, None])).sum(0)
    np.testing.assert_allclose(CrossbarCircuit(G, 3.0).mvm(v), expected, rtol=1e-14)


def test_newton_solution_satisfies_kcl_with_sinh_devices():
    G = RNG.uniform(5e-6, 100e-6, (3, 3))
    a, r_row, r_col = 3.0, 2.0, 3.0
    c = CrossbarCircuit(G, a, r_row, r_col)
    for scheme in SCHEMES:
        rv, cv = line_voltages(scheme, 3, 3, 1, 2, 0.9)
        sol = c.solve(rv, cv)
        r, col, trm, tcm = sol.row_node_voltages, sol.col_node_voltages, sol.row_voltages, sol.col_voltages
        i_dev = (G / a) * np.sinh(a * (r - col))
        scale = np.max(np.abs(i_dev))
        # KCL at every row and column node, written out independently
        worst = 0.0
        for i in range(3):
            for l in range(3):
                left = trm[i] if l == 0 else r[i, l - 1]
                s = (r[i, l] - left) / r_row + i_dev[i, l] + ((r[i, l] - r[i, l + 1]) / r_row if l < 2 else 0)
                worst = max(worst, abs(s))
                down = tcm[l] if i == 2 else col[i + 1, l]
                s = -i_dev[i, l] + (col[i, l] - down) / r_col + ((col[i, l] - col[i - 1, l]) / r_col if i > 0 else 0)
                worst = max(worst, abs(s))
        assert worst < 1e-9 * scale
        assert sol.residual < 1e-9 * scale
        # and the same operating point as the reference Newton
        _, _, I_rows, I_cols = dense_reference(G, r_row, r_col, rv, cv, a)
        np.testing.assert_allclose(sol.col_currents, np.where(np.isnan(cv), 0, I_cols), rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(sol.row_currents, np.where(np.isnan(rv), 0, I_rows), rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(sol.cell_currents, (G / a) * np.sinh(a * sol.cell_voltages), rtol=1e-14)


def test_v2_sneak_current_exceeds_v3_and_ground():
    G = np.full((16, 16), 20e-6)
    c = CrossbarCircuit(G, 3.0, 1.0, 1.0)
    V = 0.2
    cell_alone = CrossbarCircuit(G[:1, :1], 3.0).read_cell(0, 0, V, "ground")
    i2, i3, ig = (c.read_cell(5, 7, V, s) for s in ("V/2", "V/3", "ground"))
    assert i2 - cell_alone > i3 - cell_alone > 0  # half-selected cells on the sensed column
    assert abs(ig - cell_alone) < 0.01 * cell_alone  # only IR drops remain
    # ideal wires: sneak = (m - 1) I(V/2) vs (m - 1) I(V/3)
    ci = CrossbarCircuit(G, 3.0)
    f = lambda v: (20e-6 / 3.0) * math.sinh(3.0 * v)  # noqa: E731
    assert ci.read_cell(5, 7, V, "V/2") == pytest.approx(f(V) + 15 * f(V / 2), rel=1e-13)
    assert ci.read_cell(5, 7, V, "V/3") == pytest.approx(f(V) + 15 * f(V / 3), rel=1e-13)


def test_whole_array_read_matches_exact_newton():
    G = RNG.uniform(5e-6, 100e-6, (8, 7))
    c = CrossbarCircuit(G, 3.0, 3.0, 2.0)
    for scheme in SCHEMES:
        born = c.read_all(0.2, scheme, method="born")
        exact = c.read_all(0.2, scheme, method="exact")
        tol = 1e-5 if scheme != "float" else 5e-4
        assert np.max(np.abs(born / exact - 1)) < tol, scheme
    # at a larger read voltage "auto" falls back to exact solves
    expected = [c.read_cell(1, 2, 0.8, "V/2"), c.read_cell(4, 0, 0.8, "V/2")]
    np.testing.assert_allclose(c.read_cells([1, 4], [2, 0], 0.8, "V/2"), expected, rtol=1e-12)


def test_wire_resistance_lowers_far_cells():
    G = np.full((16, 16), 50e-6)
    c = CrossbarCircuit(G, 0.0, 3.0, 3.0)
    I = c.read_all(0.2, "ground")
    assert I[0, -1] < I[-1, 0]  # (0, n-1) is farthest from both drivers
    assert np.all(I < 50e-6 * 0.2)
    v = c.cell_voltages(0, 15, 1.6, "V/2")
    assert v[0, 15] < 1.6 and 0.7 < v[0, 3] < 0.8 and abs(v[5, 3]) < 0.05


def test_rank1_update_equals_refactor():
    G = RNG.uniform(5e-6, 100e-6, (10, 9))
    c = CrossbarCircuit(G, 3.0, 1.5, 2.5, refactor_after=6, port_update_max=8)
    c.read_all(0.2, "V/3")  # caches the port responses
    c.factorize()
    G2 = G.copy()
    for k in range(20):  # crosses the refactor threshold; repeats some cells
        i, j = (k * 7) % 10, (k * 5) % 9
        g = 5e-6 + 90e-6 * ((k * 37) % 11) / 10
        c.update(i, j, g)
        G2[i, j] = g
    c.update_cells([0, 1, 0], [0, 0, 0], [11e-6, 12e-6, 13e-6])
    G2[0, 0], G2[1, 0] = 13e-6, 12e-6
    ref = CrossbarCircuit(G2, 3.0, 1.5, 2.5)
    np.testing.assert_array_equal(c.g, G2)
    b = RNG.standard_normal(c.assemble().shape[0])
    x, xr = c.solve_linear(b), ref.solve_linear(b)
    assert np.max(np.abs(x - xr)) <= 1e-9 * np.max(np.abs(xr))
    Zc, Y = c.port_responses()
    Zr, Yr = ref.port_responses()
    assert np.max(np.abs(Zc - Zr)) <= 1e-9 * np.max(np.abs(Zr))
    assert np.max(np.abs(Y - Yr)) <= 1e-9 * np.max(np.abs(Yr))
    for scheme in ("V/2", "V/3", "ground"):
        np.testing.assert_allclose(c.read_all(0.2, scheme), ref.read_all(0.2, scheme), rtol=1e-9)
    np.testing.assert_allclose(c.mvm(np.full(10, 0.1)), ref.mvm(np.full(10, 0.1)), rtol=1e-9)
    assert c.stats["sm_updates"] > 0 and c.stats["factorizations"] >= 2


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        CrossbarCircuit(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        CrossbarCircuit(G22, -1.0)
    with pytest.raises(ValueError):
        CrossbarCircuit(G22, 0.0, -1.0, 1.0)
    with pytest.raises(ValueError):
        CrossbarCircuit(np.ones(3))
    c = CrossbarCircuit(G22, 3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="scheme"):
        c.read_cell(0, 0, 0.2, "V/4")
    with pytest.raises(IndexError):
        c.read_cell(2, 0, 0.2)
    with pytest.raises(ValueError):
        c.read_cell(0, 0, float("nan"))
    with pytest.raises(ValueError):
        c.mvm(np.zeros(3))
    with pytest.raises(ValueError):
        c.update(0, 0, -1e-6)
    with pytest.raises(ValueError):
        c.solve(np.full(2, np.nan), np.full(2, np.nan))
