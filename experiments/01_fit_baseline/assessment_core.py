"""The 0.2 assessment core on the bundled data: the figures quoted in this folder's README.

    python experiments/01_fit_baseline/assessment_core.py --out results/01_fit_baseline/core.json
    python experiments/01_fit_baseline/assessment_core.py --from-json results/01_fit_baseline/core.json

Parts (``--part``, default all):

* ``fit``: the default fit (``carpmodel fit``'s): convergence, condition number, estimates with
  SEs, the survey error (σ, ρ), OSA SDNR and runs test, recruits per egg, derived steepness;
  the same model without the AR(1) term and with one catchability for all surveys.
* ``start``: a profile over the start assumption (``initial_depletion`` held at each value,
  survey error at the default fit's), with the attribution's ban and release shares at each.
* ``hindcast``: fits with data to 2019 and to 2017 (``--last-data-year``): convergence, MASE.
* ``selftest``: the self-test (``--replicates``, 200 by default), coverage with MC SE, bias.

Writes one JSON (the figures, with the date, versions and machine load) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from carpmodel import diagnostics as diag
from carpmodel.inference.fitting import fit_model
from carpmodel.inference.refit import refit
from carpmodel.inference.results import derived_quantities, fit_draws
from carpmodel.inference.spec import fix_parameter
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.report.doc_blocks import machine_record
from carpmodel.studies.attribution import attribution_table

DEPLETION_GRID = (0.005, 0.01, 0.02, 0.04, 0.08)
ATTRIBUTION_DRAWS = 300
SKILL = ("n_held_out", "mase_persistence", "held_out_inside_95", "coverage_95")


def _summary(result) -> dict:
    """Convergence and estimates of one fit (natural scale, Hessian SEs)."""
    estimates = result.natural_estimates()
    error = result.survey_error
    out = {"converged": bool(result.converged), "max_abs_gradient": float(result.max_abs_gradient),
           "condition_number": float(result.condition_number), "nll": float(result.nll),
           "iterations": result.optimizer.get("iterations"), "runtime_s": float(result.runtime_s),
           "sigma_survey": float(result.spec.sigma_survey), "survey_rho": float(result.spec.survey_rho),
           "aicc": float(result.aicc),
           "estimates": {k: {"estimate": float(v["estimate"]), "se": float(v["std_error"])}
                         for k, v in estimates.items() if not k.startswith(("rec_dev", "initial_dev"))}}
    if error is not None:
        out["survey_error"] = {"sigma_se": float(error.sigma_survey_se), "rho_se": float(error.rho_se)}
    res = diag.residuals(result)
    out["residuals"] = {"sdnr": res.sdnr, "conditional_sdnr": res.conditional_sdnr,
                        "runs_p": float(res.runs.p_value), "runs_passed": res.runs.passed}
    return out


def part_fit(data) -> dict:
    config = default_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main = fit_model(data, config)
        no_ar = fit_model(data, config.with_fit(survey_ar1=False))
        shared_q = fit_model(data, config.with_fit(early_survey_last_year=None))
    out = {"default": _summary(main), "no_ar1": _summary(no_ar), "shared_q": _summary(shared_q)}
    draws = fit_draws(main, 500, 20260601)
    out["default"]["derived"] = derived_quantities(main, draws)
    return out


def part_start(data) -> dict:
    """Profile over initial_depletion (survey error held at the default fit's): the MAP objective
    with the held value's prior, and the attribution at each point (normal-approximation draws)."""
    config = default_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main = fit_model(data, config)
        spec = main.spec
        prior = {f.field: f for f in spec.free}["initial_depletion"].prior
        rows = []
        for value in DEPLETION_GRID:
            fixed = fix_parameter(spec, "initial_depletion", value)
            result = refit(fixed, source=main, label=f"initial_depletion {value}")
            row = {"initial_depletion": value, "converged": bool(result is not None and result.converged)}
            if result is not None:
                thetas = fit_draws(result, ATTRIBUTION_DRAWS, 20260601)
                table = attribution_table(fixed, thetas)
                # the fixed spec has no prior on the held value: add it back (a profile of the MAP
                # objective, as diagnostics.profile does)
                total = float(result.nll - prior.logpdf(value))
                row.update(nll=total, delta_nll=total - float(main.nll))
                for factor in ("ban", "releases", "rec_devs"):
                    q = table.sel(quantity=f"share_{factor}")
                    row[factor] = [float(q["median"]), float(q["lower_95"]), float(q["upper_95"])]
            rows.append(row)
    estimate = main.natural_estimates()["initial_depletion"]
    return {"estimate": float(estimate["estimate"]), "se": float(estimate["std_error"]),
            "profile": rows}


def part_hindcast(data) -> dict:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for year in (2019, 2017):
            config = default_config().with_fit(last_data_year=year)
            result = fit_model(data, config)
            table = diag.hindcast_predictions(result, config, data)
            out[str(year)] = {"converged": bool(result.converged),
                              "condition_number": float(result.condition_number),
                              **{k: table.attrs[k] for k in SKILL if k in table.attrs}}
    return out


def part_selftest(data, replicates: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main = fit_model(data, default_config())
        started = time.perf_counter()
        result = diag.self_test(main, n_replicates=replicates, seed=20260601)
    summary = result.summary
    out = {"replicates": replicates, "converged": int(result.n_converged),
           "runtime_s": time.perf_counter() - started, "quantities": {}}
    for quantity in summary["quantity"].values:
        row = summary.sel(quantity=quantity)
        out["quantities"][str(quantity)] = {
            k: float(row[k]) for k in ("coverage", "coverage_mc_se", "median_relative_bias", "n_used")
            if k in row}
    return out


def print_tables(record: dict) -> None:
    if "fit" in record:
        for name, fit in record["fit"].items():
            r = fit["residuals"]
            print(f"{name:9s} converged {fit['converged']} |g| {fit['max_abs_gradient']:.1e} "
                  f"cond {fit['condition_number']:.2g} sigma {fit['sigma_survey']:.3f} rho "
                  f"{fit['survey_rho']:.2f} SDNR {r['sdnr']:.2f} runs p {r['runs_p']:.2f} "
                  f"AICc {fit['aicc']:.1f}")
        for k, v in record["fit"]["default"]["estimates"].items():
            print(f"  {k:28s} {v['estimate']:.4g} ± {v['se']:.2g}")
    if "start" in record:
        s = record["start"]
        print(f"initial_depletion estimate {s['estimate']:.3f} ± {s['se']:.3f}")
        print("depletion  ΔNLL   ban share (95 %)         releases (95 %)")
        for row in s["profile"]:
            if "ban" in row:
                b, rel = row["ban"], row["releases"]
                print(f"{row['initial_depletion']:<9g} {row['delta_nll']:6.2f}  {b[0]:.2f} "
                      f"[{b[1]:.2f}, {b[2]:.2f}]   {rel[0]:.3f} [{rel[1]:.3f}, {rel[2]:.3f}]")
    if "hindcast" in record:
        for year, h in record["hindcast"].items():
            print(f"hindcast from {year}: {h}")
    if "selftest" in record:
        st = record["selftest"]
        print(f"self-test {st['replicates']} replicates, {st['converged']} converged")
        for q, row in st["quantities"].items():
            print(f"  {q:24s} {row}")


def markdown(record: dict) -> str:
    """The README tables of the record (the figures quoted in this folder's README)."""
    out = []
    m = record["machine"]
    out.append(f"Run {m['date']}, carpmodel {m['carpmodel']}, numpy {m['numpy']}, scipy {m['scipy']}, "
               f"load {m['load_average'][0]:.1f} on {m['cpus']} cores.\n")
    if "fit" in record:
        out.append("| fit | converged (max abs gradient) | Hessian condition | σ survey | AR(1) ρ | "
                   "OSA SDNR | runs test p | iterations | time (s) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        labels = {"default": "default (AR(1), 2002 own q)", "no_ar1": "independent errors",
                  "shared_q": "one q for all surveys"}
        for name, f in record["fit"].items():
            r = f["residuals"]
            ok = "yes" if f["converged"] else "no"
            out.append(f"| {labels[name]} | {ok} ({f['max_abs_gradient']:.1e}) | "
                       f"{f['condition_number']:.2g} | {f['sigma_survey']:.3f} | {f['survey_rho']:.2f} | "
                       f"{r['sdnr']:.2f} | {r['runs_p']:.2f} | {f['iterations']} | {f['runtime_s']:.0f} |")
        out.append("")
        out.append("| parameter | estimate ± SE |")
        out.append("|---|---|")
        for k, v in record["fit"]["default"]["estimates"].items():
            out.append(f"| `{k}` | {v['estimate']:.4g} ± {v['se']:.2g} |")
        for k, v in record["fit"]["default"].get("derived", {}).items():
            out.append(f"| {k} (derived) | {v['estimate']:.3g} "
                       f"(95 % {v['lower_95']:.3g}–{v['upper_95']:.3g}) |")
        out.append("")
    if "start" in record:
        s = record["start"]
        out.append("| initial depletion (held) | ΔNLL | ban share, median (95 %) | releases' share (95 %) |")
        out.append("|---|---|---|---|")
        for row in s["profile"]:
            if "ban" in row:
                b, r = row["ban"], row["releases"]
                out.append(f"| {row['initial_depletion']:g} | {row['delta_nll']:.2f} | "
                           f"{b[0]:.0%} ({b[1]:.0%}–{b[2]:.0%}) | {r[0]:.1%} ({r[1]:.1%}–{r[2]:.1%}) |")
        out.append("")
    if "hindcast" in record:
        out.append("| hindcast from | converged | Hessian condition | held-out surveys | "
                   "MASE vs persistence | inside 95 % |")
        out.append("|---|---|---|---|---|---|")
        for year, h in record["hindcast"].items():
            out.append(f"| {year} | {'yes' if h['converged'] else 'no'} | {h['condition_number']:.2g} | "
                       f"{h['n_held_out']} | {h['mase_persistence']:.2f} | {h['held_out_inside_95']} of "
                       f"{h['n_held_out']} |")
        out.append("")
    if "selftest" in record:
        st = record["selftest"]
        out.append(f"Self-test: {st['replicates']} replicates, {st['converged']} converged.\n")
        out.append("| quantity | coverage of the 95 % interval (MC SE) | median relative bias |")
        out.append("|---|---|---|")
        for q, row in st["quantities"].items():
            out.append(f"| {q} | {row['coverage']:.3f} ({row['coverage_mc_se']:.3f}) | "
                       f"{row['median_relative_bias']:+.1%} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from-json", type=Path)
    parser.add_argument("--part", choices=("fit", "start", "hindcast", "selftest"), action="append")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--markdown", action="store_true", help="with --from-json: the README tables")
    args = parser.parse_args()
    if args.from_json:
        record = json.loads(args.from_json.read_text())
        print(markdown(record) if args.markdown else "", end="")
        if not args.markdown:
            print_tables(record)
        return
    data = load_data(BUNDLED_DATA_DIRECTORY)
    parts = args.part or ["fit", "start", "hindcast", "selftest"]
    # parts run separately add to the same file
    record: dict = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {}
    record["machine"] = machine_record()
    for part in parts:
        started = time.perf_counter()
        record[part] = (part_selftest(data, args.replicates) if part == "selftest" else
                        {"fit": part_fit, "start": part_start, "hindcast": part_hindcast}[part](data))
        record[part + "_runtime_s"] = time.perf_counter() - started
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print_tables(record)


if __name__ == "__main__":
    main()
