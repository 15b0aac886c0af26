"""The ex-situ transfer on chips whose SET distribution is not the Gaussian the laws assume."""

from dataclasses import replace

import pytest

from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.nn.exsitu import ExSituSettings, run_exsitu
from labrram.station import load_station


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lognormal", "heavy"])
def test_transfer_on_a_non_gaussian_chip_with_the_empirical_model(family):
    """Calibrated through the instruments, the test rejects the Gaussian and the fitted model
    programs from the measured quantiles: decisions and uncertainty of the software network
    are preserved on the 60 x 60 moons grid. The Gaussian-assuming model of the same data,
    on the same chip, is run beside it for comparison (its figures are printed)."""
    with load_station().with_simulation(bench=f"exsitu-{family}", seed=0, set_distribution=family).connect() as c:
        assert c.bench.chip.reveal_truth().set_family == family
        data = characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=0))
        fit = ReRAMFit(seed=0).fit(data)
        assert fit.gof_["gaussian_rejected"] and fit.model_.set_family == "empirical"
        empirical = run_exsitu(c.crossbar, fit.model_, ExSituSettings(seed=0)).summary["grid"]
        gaussian = run_exsitu(c.crossbar, replace(fit.model_, set_family="gaussian"), ExSituSettings(seed=0)).summary["grid"]
    for name, g in (("empirical", empirical), ("gaussian", gaussian)):
        print(f"{family} chip, {name} model: agreement {g['agreement']:.4f}, entropy correlation {g['entropy_correlation']:.4f}, entropy MAE {g['entropy_mae']:.4f}")
    assert empirical["agreement"] >= 0.95
    assert empirical["entropy_correlation"] >= 0.9
