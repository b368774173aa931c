"""Initial-state options, their remedies, and the data tensions (issue #4 item 2).

Run from the repository root (single-threaded numpy; ~30 min on 2 cores, the 1956 starts
dominate):

    python experiments/01_fit_baseline/initial_states.py [--part initial|tensions|hatchery]
        [--json results/01_fit_baseline/initial_states.json] [--from-json FILE]

Prints markdown tables (the ones in this folder's README):
1. ``initial``: the three initial states, each with and without the remedies for catch and
   survey in conflict (catch scale with error, unreported catch, a step in the unfished level);
2. ``tensions``: the default start (2000) with a separate early-survey catchability, inflated
   early CVs, survey CVs ×0.5 and ×2, and the reported hatchery shares in the likelihood;
3. ``hatchery``: at the default fit, the release survival, release size, release numbers and
   growth that would reproduce the reported 23 % (2015) and 26 % (2024) hatchery shares.

AICc is computed on the survey data component (biomass, plus the hatchery shares when on) with
k the estimated parameters other than recruitment deviations and the F of each year (the
catches inform those), n the data points: with 12 survey points every extra parameter costs a
lot, so read it next to the MAP objective and the convergence columns. The total NLL is not
comparable across starts: it sums one recruitment-deviation term per modelled year and, with
catch error, one catch term per fished year.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import brentq

from carpmodel.inference.build import CATCH_SCALE_SD_LOG, CATCH_SD_LOG, build_spec
from carpmodel.inference.fitting import FitResult, fit
from carpmodel.inference.likelihood import predict, requested_catch_t, survey_prediction_t
from carpmodel.inference.spec import F_FIELD
from carpmodel.io.config import RunConfig, default_config
from carpmodel.io.inputs import load_data
from carpmodel.model.dynamics import ProcessMultipliers
from carpmodel.model.growth import length_at_weight_cm

ROOT = Path(__file__).resolve().parents[2]
DATA_COMPONENTS = ("biomass", "biomass_upper_bound", "hatchery_fraction")


def initial_state_variants() -> dict[str, RunConfig]:
    """The initial states with and without each remedy (one start each; see README).

    Catch exact is the engine's default (F solved to take each recorded catch); "catch error"
    makes the catch data (lognormal, sd_log 0.2) and estimates F by year, which is also what
    lets the other remedies be fitted (exact catches put the 1956 and 1986 starts on a knife
    edge that no optimiser converges on).
    """
    error = {"catch_sd_log": CATCH_SD_LOG}
    out = {"2000 equilibrium F (default)": default_config()}
    starts = (("1956 unfished", "unfished_1956", (1963, 2000), (1965, 1975, 1985)),
              ("1986 equilibrium F", "equilibrium_1986", (1986, 2000), (1995,)))
    for label, state, unreported, step in starts:
        base = default_config().with_fit(initial_state=state)
        out[f"{label}, catch exact"] = base
        out[f"{label}, catch exact + catch scale"] = base.with_fit(catch_scale_sd_log=CATCH_SCALE_SD_LOG)
        out[f"{label}, catch error"] = base.with_fit(**error)
        out[f"{label}, catch error sd_log 0.5"] = base.with_fit(catch_sd_log=0.5)
        out[f"{label}, catch error + catch scale"] = base.with_fit(**error,
                                                             catch_scale_sd_log=CATCH_SCALE_SD_LOG)
        out[f"{label}, catch error + unreported {unreported[0]}-{unreported[1]}"] = base.with_fit(
            **error, unreported_catch_years=unreported)
        for year in step:
            out[f"{label}, catch error + unfished step {year}"] = base.with_fit(
                **error, unfished_change_year=year)
    return out


def tension_variants() -> dict[str, RunConfig]:
    """The default start with the data tensions of item 2 (one start each)."""
    base = default_config()
    return {
        "default": base,
        "early q (≤2012), weak prior LN(0.3, 1.0)": base.with_fit(early_survey_last_year=2012),
        "early q (≤2012), informative LN(0.5, 0.3)": base.with_fit(
            early_survey_last_year=2012, early_q_prior_median=0.5, early_q_prior_sd_log=0.3),
        "early q (≤2012), informative LN(1.0, 0.3)": base.with_fit(
            early_survey_last_year=2012, early_q_prior_median=1.0, early_q_prior_sd_log=0.3),
        "early CV ×2 (≤2012), shared q": base.with_fit(early_survey_last_year=2012,
                                                  early_separate_q=False, early_cv_multiplier=2.0),
        "survey CVs ×0.5": base.with_fit(cv_multiplier=0.5),
        "survey CVs ×2": base.with_fit(cv_multiplier=2.0),
        "hatchery shares 2015/2024 in the likelihood": base.with_fit(use_hatchery_fractions=True),
        "hatchery shares, flat release-survival prior": base.with_fit(
            use_hatchery_fractions=True, release_survival_prior="flat"),
    }


def aicc(nll_data: float, k: int, n: int) -> float:
    """``2·NLL + 2k + 2k(k+1)/(n − k − 1)`` (+inf when n − k − 1 ≤ 0)."""
    return float("inf") if n - k - 1 <= 0 else 2 * nll_data + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def summarise(result: FitResult) -> dict[str, Any]:
    """One table row: convergence, NLL by component, AICc, and the key estimates."""
    spec = result.spec
    state, u = predict(spec, result.theta)
    est = result.natural_estimates()
    ratio = float(np.asarray(u.observation["unfished_change"]))
    b0_now = float(state.reference.biomass0_t)
    b0_first = b0_now / ratio
    change = spec.unfished_change_year
    b0_2000 = b0_first if change is not None and change > 2000 else b0_now
    year = {int(y): i for i, y in enumerate(spec.years)}
    k = sum(1 for f in spec.estimated if not F_FIELD.match(f.field))
    n = int(spec.observations.year.size + len(spec.hatchery_fractions) + (spec.upper_bound is not None))
    nll_data = sum(v for c, v in result.nll_components.items() if c in DATA_COMPONENTS)
    q = float(np.asarray(u.params.survey_q))
    row = {
        "converged": result.converged, "max_abs_gradient": result.max_abs_gradient,
        "worst_parameter": result.worst_gradient_parameter,
        "hessian_pd": result.hessian_positive_definite, "nll": result.nll,
        "components": result.nll_components, "k": k, "n": n, "nll_data": nll_data,
        "aicc": aicc(nll_data, k, n), "b0_first_t": b0_first, "b0_now_t": b0_now,
        "steepness": float(np.asarray(state.reference.steepness)), "q": q,
        "m_ref": float(np.asarray(u.params.m_ref_per_yr)),
        "depletion_2000": float(state.biomass_t[year[2000]]) / b0_2000,
        "survey_pred_2002_t": _survey_prediction(spec, state, u, 2002),
        "survey_pred_2012_t": _survey_prediction(spec, state, u, 2012),
        "b2024_t": float(state.biomass_t[year[2024]]), "b2024_qb_t": q * float(state.biomass_t[year[2024]]),
        "shortfall_t": float(np.sum(state.catch_shortfall_t)),
        "catch_log_ratio_max": _catch_misfit(spec, state, u),
        "hatchery_share_2015": float(state.hatchery_fraction_biomass[year[2015]]),
        "hatchery_share_2024": float(state.hatchery_fraction_biomass[year[2024]]),
        "runtime_s": result.runtime_s, "iterations": result.optimizer["iterations"],
        "estimates": {name: v["estimate"] for name, v in est.items()},
        "std_errors": {name: v["std_error"] for name, v in est.items()},
        "parameter_names": list(result.parameter_names), "theta": result.theta.tolist(),
    }
    return row


def _catch_misfit(spec: Any, state: Any, u: Any) -> float:
    """Largest |log(model catch / requested catch)| over the fished years."""
    requested = np.asarray(requested_catch_t(spec, u))
    fished = requested > 0
    if not np.any(fished):
        return 0.0
    return float(np.max(np.abs(np.log(np.maximum(state.catch_t[fished], 1e-300) / requested[fished]))))


def _survey_prediction(spec: Any, state: Any, u: Any, year: int) -> float:
    """The model's survey prediction (q·B, early q where it applies) in an observed year, t."""
    where = np.flatnonzero(spec.observations.year == year)
    return float(survey_prediction_t(spec, state, u)[where[0]]) if where.size else float("nan")


def run(variants: dict[str, RunConfig], data: Any) -> dict[str, dict[str, Any]]:
    rows = {}
    for name, options in variants.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(build_spec(data, options), n_starts=1, seed=options.seed)
        rows[name] = summarise(result)
        print(f"  fitted {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def _extra(row: dict[str, Any]) -> str:
    names = {"catch_scale": "catch ×{:.2f}", "unreported_catch_t": "unreported {:,.0f} t/yr",
             "unfished_change": "R0 ratio {:.2f}", "survey_q_early": "q_early {:.2f}",
             "release_survival": "s_rel {:.2f}"}
    out = []
    for name, fmt in names.items():
        if name in row["estimates"]:
            se = row["std_errors"][name]
            out.append(fmt.format(row["estimates"][name]) + ("" if not np.isfinite(se) else f" ± {se:.2g}"))
    return "; ".join(out)


COLUMNS = ("variant", "converged (max abs gradient, Hessian pd)", "NLL total", "biomass", "rec devs",
           "priors", "catch", "shortfall penalty", "max abs log(catch/recorded)", "k", "AICc (data)",
           "B0 first year (kt)", "h", "q", "depletion 2000", "B2024 model / q·B (kt)",
           "survey pred. 2002 / 2012 (t)", "other estimates")


def table(rows: dict[str, dict[str, Any]], *, shares: bool = False) -> str:
    """Markdown table of :func:`summarise` rows (``shares``: add the modelled hatchery shares)."""
    columns = COLUMNS + (("hatchery share 2015 / 2024",) if shares else ())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, r in rows.items():
        c = r["components"]
        b0 = f"{r['b0_first_t'] / 1e3:.0f}"
        if abs(r["b0_now_t"] - r["b0_first_t"]) > 1:
            b0 += f" → {r['b0_now_t'] / 1e3:.0f}"
        cells = [name, f"{'yes' if r['converged'] else 'no'} ({r['max_abs_gradient']:.1e}, "
                       f"{'yes' if r['hessian_pd'] else 'no'})",
                 f"{r['nll']:.2f}", f"{c['biomass']:.2f}", f"{c['recruitment_deviations']:.2f}",
                 f"{c['priors']:.2f}", f"{c['catch']:.2f}" if "catch" in c else "–",
                 f"{c.get('catch_shortfall', 0.0):.2f}", f"{r['catch_log_ratio_max']:.3f}", str(r["k"]),
                 f"{r['aicc']:.1f}", b0, f"{r['steepness']:.2f}", f"{r['q']:.2f}",
                 f"{r['depletion_2000']:.3f}",
                 f"{r['b2024_t'] / 1e3:.0f} / {r['b2024_qb_t'] / 1e3:.0f}",
                 f"{r['survey_pred_2002_t']:,.0f} / {r['survey_pred_2012_t']:,.0f}",
                 _extra(r)]
        if shares:
            cells.append(f"{100 * r['hatchery_share_2015']:.1f} % / {100 * r['hatchery_share_2024']:.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- hatchery shares

def hatchery_levers(data: Any) -> dict[str, Any]:
    """At the default fit (not refitted), the modelled hatchery share of survey biomass in 2015
    and 2024 as one lever changes, and the lever value that reproduces each reported share."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(build_spec(data, default_config()), n_starts=1)
    spec = result.spec
    i15, i24 = (int(np.searchsorted(spec.years, y)) for y in (2015, 2024))
    theta = result.theta
    i_surv = list(result.parameter_names).index("logit_release_survival")
    s_fit = float(spec.estimated[i_surv].from_theta(theta[i_surv]))
    weights = _release_weights(data, spec.years)

    def share(*, survival: float | None = None, numbers: float = 1.0, weight: float = 1.0,
              growth: float = 1.0) -> tuple[float, float]:
        t = theta.copy()
        if survival is not None:
            t[i_surv] = float(spec.estimated[i_surv].to_theta(min(survival, 1 - 1e-12)))
        s = spec
        if weight != 1.0:
            lw_a, lw_b = float(spec.base.lw_a), float(spec.base.lw_b)
            length = np.where(weights > 0, length_at_weight_cm(weights * weight, lw_a, lw_b),
                              spec.drivers.release_length_cm)
            s = replace(s, drivers=replace(s.drivers, release_length_cm=length))
        if growth != 1.0:
            s = replace(s, multipliers=ProcessMultipliers(growth_k=growth))
        state, _ = predict(s, t, release_fish=spec.drivers.release_fish * numbers)
        return float(state.hatchery_fraction_biomass[i15]), float(state.hatchery_fraction_biomass[i24])

    def needed(lever: str, lo: float, hi: float, target: float, which: int) -> float | None:
        def f(x: float) -> float:
            return share(**{lever: x})[which] - target

        if f(lo) * f(hi) > 0:
            return None
        return float(brentq(f, lo, hi, xtol=1e-6))

    reported = {2015: 0.23, 2024: 0.26}
    out: dict[str, Any] = {"fitted_survival": s_fit, "fitted": share(), "survival_1": share(survival=1.0)}
    for year, which in ((2015, 0), (2024, 1)):
        target = reported[year]
        out[year] = {
            "survival": needed("survival", s_fit, 1.0 - 1e-9, target, which),
            "numbers_x": needed("numbers", 1.0, 1e3, target, which),
            "weight_x": needed("weight", 1.0, 1e3, target, which),
            "growth_k_x": needed("growth", 1.0, 3.0, target, which),
        }
    out["grid"] = {f"weight ×{w:g}": share(weight=w) for w in (1, 2, 5, 10, 20, 50)}
    out["grid"].update({f"growth K ×{g:g} (all fish)": share(growth=g) for g in (1.25, 1.5, 2.0)})
    return out


def _release_weights(data: Any, years: np.ndarray) -> np.ndarray:
    """Recorded weight at release (g) on the (year, age) grid of the model, 0 without releases."""
    rel = data.releases
    n_age = int(data.life_history.value("max_age_yr")) + 1
    weights = np.zeros((years.size, n_age))
    for year, age, weight in zip(rel.year, rel.age_at_release_yr, rel.weight_at_release_g, strict=True):
        if years[0] <= year <= years[-1]:
            weights[int(year - years[0]), int(age)] = float(weight)
    return weights


def hatchery_table(levers: dict[str, Any]) -> str:
    def fmt(value: float | None, unit: str = "") -> str:
        return "not reached" if value is None else f"{value:.3g}{unit}"

    f15, f24 = levers["fitted"]
    s15, s24 = levers["survival_1"]
    lines = [f"Default fit: release survival {levers['fitted_survival']:.2f}; modelled hatchery share of "
             f"survey biomass {100 * f15:.1f} % (2015), {100 * f24:.1f} % (2024); at survival 1.0: "
             f"{100 * s15:.1f} %, {100 * s24:.1f} %.", "",
             "| reported share | release survival needed | release numbers × (at fitted survival) | "
             "release weight × | growth K × (all fish) |", "|---|---|---|---|---|"]
    for year, target in ((2015, 0.23), (2024, 0.26)):
        r = levers[year] if year in levers else levers[str(year)]
        lines.append(f"| {100 * target:.0f} % in {year} | {fmt(r['survival'])} | {fmt(r['numbers_x'])} | "
                     f"{fmt(r['weight_x'])} | {fmt(r['growth_k_x'])} |")
    lines += ["", "| lever | share 2015 | share 2024 |", "|---|---|---|"]
    for name, (a, b) in levers["grid"].items():
        lines.append(f"| {name} | {100 * a:.1f} % | {100 * b:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("initial", "tensions", "hatchery", "all"), default="all")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="print the tables of a JSON written by --json instead of fitting")
    args = parser.parse_args()
    if args.from_json is not None:
        record = json.loads(args.from_json.read_text())
        for key, title in (("initial", "Initial states and remedies"), ("tensions", "Data tensions")):
            if key in record:
                print(f"\n## {title}\n\n" + table(record[key], shares=key == "tensions") + "\n")
        if "hatchery" in record:
            print("\n## What would reproduce the reported hatchery shares\n\n"
                  + hatchery_table(record["hatchery"]) + "\n")
        return
    data = load_data(ROOT / "data")
    record = {}
    if args.part in ("initial", "all"):
        record["initial"] = run(initial_state_variants(), data)
        print("\n## Initial states and remedies\n\n" + table(record["initial"]) + "\n", flush=True)
    if args.part in ("tensions", "all"):
        record["tensions"] = run(tension_variants(), data)
        print("\n## Data tensions (start 2000)\n\n" + table(record["tensions"], shares=True) + "\n",
              flush=True)
    if args.part in ("hatchery", "all"):
        record["hatchery"] = hatchery_levers(data)
        print("\n## What would reproduce the reported hatchery shares\n\n"
              + hatchery_table(record["hatchery"]) + "\n", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1, default=float))


if __name__ == "__main__":
    main()
