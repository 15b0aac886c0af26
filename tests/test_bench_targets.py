"""How the benchmarks judge a measured value against a reproduction target's limit, and read
their settings from the environment."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import against, env_float, env_int


def test_a_mean_of_whole_test_images_on_the_limit_is_met_and_shown_to_3_decimals():
    # 16 deployments losing 48 of 600 test images between them: exactly 0.5 point, which the
    # floating-point mean of their accuracy differences lands a hair above
    before = np.array([489, 489, 483, 487, 489, 520, 487, 505, 518, 486, 498, 485, 516, 517, 486, 493])
    lost = np.array([3, 6, -1, 10, 8, 2, 4, -1, 6, 2, -1, -1, -4, 0, 10, 5])
    assert lost.sum() == 48
    drop = (100 * before / 600 - 100 * (before - lost) / 600).mean()
    assert drop > 0.5
    assert against(drop, 0.5, at_most=True, sign="+") == ("+0.500", "met")
    assert against(0.5031, 0.5, at_most=True, sign="+") == ("+0.503", "not met")
    assert against(0.47, 0.5, at_most=True, sign="+") == ("+0.47", "met")


def test_at_least_targets_and_two_decimals_away_from_the_limit():
    assert against(1.996, 2.0, at_most=False) == ("1.996", "not met")
    assert against(2.53, 2.0, at_most=False) == ("2.53", "met")
    assert against(1.27, 1.0, at_most=True) == ("1.27", "not met")


def test_numbers_from_the_environment_name_the_variable_when_bad(monkeypatch):
    monkeypatch.delenv("LABRRAM_TEST_N", raising=False)
    assert env_int("LABRRAM_TEST_N", 3) == 3 and env_float("LABRRAM_TEST_N", 2.0) == 2.0
    monkeypatch.setenv("LABRRAM_TEST_N", "2.5")
    assert env_float("LABRRAM_TEST_N", 2.0) == 2.5
    with pytest.raises(SystemExit, match="LABRRAM_TEST_N must be an integer, got '2.5'"):
        env_int("LABRRAM_TEST_N", 3)
    for bad, what in (("two", "a number"), ("nan", "a finite number")):
        monkeypatch.setenv("LABRRAM_TEST_N", bad)
        with pytest.raises(SystemExit, match=f"LABRRAM_TEST_N must be {what}"):
            env_float("LABRRAM_TEST_N", 2.0)


def test_the_spread_table_gives_the_sampling_floor_and_the_largest_ratio_it_leaves():
    """No correction narrows the deployments below the software's own spread: the table says
    how large a ratio that floor leaves at each time."""
    from benchmarks.bench_bayes2imc import VARIANTS, ceiling, drift_tables

    unc = [[0.80, 0.80], [0.82, 0.84], [0.84, 0.88]]  # two times: spread 2 and 4 points
    results = [{"scores": [{v: (u if v == "uncorrected" else 0.82) for v in VARIANTS} for u in row]} for row in unc]
    for r, c in zip(results, (0.815, 0.82, 0.825)):  # corrected: 0.5 point at both times
        for s in r["scores"]:
            s["corrected"] = c
    tabs = drift_tables(results, [0.81, 0.82, 0.83], {v: v for v in VARIANTS}, 2, 0, 1)
    rows = {r[0]: r[1:] for r in tabs["spread"]}
    assert tabs["floor"] == pytest.approx(1.0)
    assert rows["ratio uncorrected / corrected"] == ["4.00", "8.00"]
    assert rows["software (RNG), same M (sampling floor)"] == ["1.00", "1.00"]
    assert rows["largest ratio the floor leaves (uncorrected / floor)"] == ["2.00", "4.00"]
    assert tabs["ratio"] == pytest.approx([4.0, 8.0]) and tabs["most"] == pytest.approx([2.0, 4.0])
    assert ceiling(1.0, 0.0) == float("inf")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LABRRAM_B2IMC_CAL_READS", "1", "LABRRAM_B2IMC_CAL_READS must be 0 (the scored networks' own reads) or >= 2"),
        ("LABRRAM_B2IMC_CAL_READS", "-3", "LABRRAM_B2IMC_CAL_READS must be 0"),
        ("LABRRAM_B2IMC_CAL_READS", "many", "LABRRAM_B2IMC_CAL_READS must be an integer, got 'many'"),
        ("LABRRAM_B2IMC_LEFT_OUT", "drop", "LABRRAM_B2IMC_LEFT_OUT must be one of ('mean', 'zero'), got 'drop'"),
    ],
)
def test_the_fashion_mnist_bayes2imc_benchmark_refuses_a_bad_setting_before_running(name, value, message):
    import os
    import subprocess
    import sys

    env = {**os.environ, name: value}
    run = subprocess.run([sys.executable, "-c", "import benchmarks.bayes2imc_fmnist"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert message in run.stderr


@pytest.mark.parametrize(
    ("env", "n_test", "page"),
    [
        ({}, 10000, "hardware-aware"),
        ({"LABRRAM_B2IMC_LEFT_OUT": "zero", "LABRRAM_B2IMC_CAL_READS": "32"}, 600, "hardware-aware_cal32_zero_test600"),
        ({"LABRRAM_B2IMC_LEFT_OUT": "zero", "LABRRAM_B2IMC_CAL_READS": "32", "LABRRAM_B2IMC_NORMS": "0"}, 600, "hardware-aware_cal32_logitsonly_zero_test600"),
        ({"LABRRAM_B2IMC_ATTEMPTS": "2", "LABRRAM_B2IMC_REMAP": "1", "LABRRAM_B2IMC_Z_NOISE": "3"}, 10000, "hardware-aware_attempts2_remap_z3"),
        ({"LABRRAM_B2IMC_REFERENCE": "column", "LABRRAM_B2IMC_READS": "4", "LABRRAM_B2IMC_CAL_READS": "128"}, 600, "hardware-aware_column_reads4_cal128_test600"),
    ],
)
def test_a_fashion_mnist_bayes2imc_page_is_named_by_the_settings_off_their_defaults(env, n_test, page):
    """The defaults write the bare page; every other setting adds its suffix, in one order, so a
    page's name says how to run it again."""
    import os
    import subprocess
    import sys

    keep = {k: v for k, v in os.environ.items() if not k.startswith("LABRRAM_B2IMC_")}
    code = f"import benchmarks.bayes2imc_fmnist as b; print(b.page_name('hardware-aware', {n_test}))"
    run = subprocess.run([sys.executable, "-c", code], env={**keep, **env}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"docs/bench/bayes2imc_fmnist_{page}.md"


def test_every_fashion_mnist_benchmark_skips_with_the_reason_when_the_dataset_is_absent(tmp_path):
    """No Fashion-MNIST files: each benchmark that needs them says why it is skipped, writes
    no page, and the run goes on."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = ["fmnist", "joshi_fmnist", "bayes2imc", "bayes2imc_reads", "bayes2imc_sources"]
    env = {**os.environ, "LABRRAM_FASHION_MNIST": str(tmp_path), "LABRRAM_BENCH_OUT": str(tmp_path / "out")}
    run = subprocess.run([sys.executable, "-m", "benchmarks", *names], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for label in ("fmnist", "joshi_fmnist", "bayes2imc (fmnist)", "bayes2imc_reads", "bayes2imc_sources"):
        assert f"{label}: skipped: Fashion-MNIST: no " in run.stdout
    assert str(tmp_path) in run.stdout and "make fashion-mnist" in run.stdout
