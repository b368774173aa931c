"""Fit diagnostics: residuals and runs test, retrospective (Mohn's ρ), hindcast skill (MASE),
likelihood profiles, simulation self-test, model comparison (AICc) and posterior predictive
checks against reported values the fit does not use.

What users of Stock Synthesis (r4ss, ss3diags), WHAM and SAM expect to see after a fit
(Carvalho et al. 2021, "A cookbook for using model diagnostics in integrated stock
assessments", Fish. Res. 240: 105959). Every function is pure: it takes a fit or the data and
:class:`~carpmodel.io.config.RunConfig`, refits where the method needs it, and returns a frozen
result with a ``to_dict()`` of JSON-ready numbers (NaN and ±inf become ``None``) and xarray
objects for the tables that have dimensions. No file I/O and no plotting here.

One module per job: :mod:`~carpmodel.diagnostics.residuals`,
:mod:`~carpmodel.diagnostics.retrospective`, :mod:`~carpmodel.diagnostics.hindcast`,
:mod:`~carpmodel.diagnostics.profile`, :mod:`~carpmodel.diagnostics.self_test`,
:mod:`~carpmodel.diagnostics.comparison`, :mod:`~carpmodel.diagnostics.posterior_predictive`;
this package re-exports their public names (``diagnostics.residuals(result)``). The functions
``residuals``, ``retrospective``, ``hindcast``, ``profile``, ``self_test`` and
``posterior_predictive`` share their module's name, so ``carpmodel.diagnostics.profile`` is the
function: reach a module itself with ``from carpmodel.diagnostics.profile import ...`` or
``sys.modules``.
"""

from carpmodel.diagnostics.comparison import (
    DATA_COMPONENTS,
    ModelComparison,
    SpecBuilder,
    aicc,
    compare_fits,
    compare_models,
    default_variants,
)
from carpmodel.diagnostics.hindcast import (
    MASE_NAIVE_FLOOR,
    HindcastResult,
    held_out_summary,
    hindcast,
    hindcast_predictions,
    hindcast_skill_line,
    mase,
)
from carpmodel.diagnostics.posterior_predictive import (
    CHECKED_QUANTITIES,
    posterior_predictive,
    reported_values,
)
from carpmodel.diagnostics.profile import PROFILE_CHI2_HALF, ProfileResult, profile, profile_grid
from carpmodel.diagnostics.residuals import ResidualDiagnostics, RunsTest, residuals, runs_test
from carpmodel.diagnostics.retrospective import (
    HURTADO_FERRO_RHO_RANGE,
    RetrospectiveResult,
    mohns_rho,
    peel_fits,
    retrospective,
)
from carpmodel.diagnostics.self_test import (
    NOMINAL_COVERAGE,
    SELF_TEST_QUANTITIES,
    SelfTestResult,
    coverage_mc_se,
    self_test,
    simulate_replicates,
)
from carpmodel.inference.refit import map_start as map_theta

__all__ = [
    "CHECKED_QUANTITIES",
    "DATA_COMPONENTS",
    "HURTADO_FERRO_RHO_RANGE",
    "MASE_NAIVE_FLOOR",
    "NOMINAL_COVERAGE",
    "PROFILE_CHI2_HALF",
    "SELF_TEST_QUANTITIES",
    "HindcastResult",
    "ModelComparison",
    "ProfileResult",
    "ResidualDiagnostics",
    "RetrospectiveResult",
    "RunsTest",
    "SelfTestResult",
    "SpecBuilder",
    "aicc",
    "compare_fits",
    "compare_models",
    "coverage_mc_se",
    "default_variants",
    "held_out_summary",
    "hindcast",
    "hindcast_predictions",
    "hindcast_skill_line",
    "map_theta",
    "mase",
    "mohns_rho",
    "peel_fits",
    "posterior_predictive",
    "profile",
    "profile_grid",
    "reported_values",
    "residuals",
    "retrospective",
    "runs_test",
    "self_test",
    "simulate_replicates",
]
