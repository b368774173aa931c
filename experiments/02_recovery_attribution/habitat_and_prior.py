"""Issue #14 items 3-4: the recovery attribution with river connectivity as a fourth factor, and
how much of each share is prior (the same decomposition across release-survival prior x Lorenzen
c x density-dependence window). Writes habitat_and_prior.txt beside this file.

    python experiments/02_recovery_attribution/habitat_and_prior.py [n_draws]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.io.config import default_config
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.management.ensemble import EnsembleDefinition, MortalityStructure, fit_ensemble, single_member
from carpmodel.studies.attribution_prior import attribution_across_members, format_members

N_DRAWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
SEED = 20261204


def main() -> None:
    started = time.perf_counter()
    data = load_data(BUNDLED_DATA_DIRECTORY)
    base = default_config().with_fit(n_starts=1)
    habitat = base.with_fit(estimate=(*base.fit.estimate, "habitat_slope"))
    lines = [f"carpmodel issue #14: attribution with habitat and the prior's part ({N_DRAWS} draws per fit)",
             ""]
    for label, config in (("three factors (default model)", base), ("four factors (habitat_slope estimated)",
                                                                    habitat)):
        result = fit(build_spec(data, config), n_starts=1, seed=SEED)
        one = attribution_across_members(single_member(result), n_draws=N_DRAWS, seed=SEED)
        natural = result.natural_estimates()
        lines += [f"## {label}: converged {result.converged}, NLL {result.nll:.3f}",
                  *([f"habitat_slope {natural['habitat_slope']}"] if "habitat_slope" in natural else []),
                  format_members(one), ""]
    definition = EnsembleDefinition(dd_windows=(1, 2), release_survival_priors=("informative", "flat"),
                                    mortality=(MortalityStructure("c1", lorenzen_c=1.0),
                                               MortalityStructure("c0", lorenzen_c=0.0)),
                                    initial_states=("depletion",), n_starts=1)
    for label, config in (("ensemble, three factors", base), ("ensemble, four factors", habitat)):
        fits = fit_ensemble(data, definition, config, seed=SEED)
        members = attribution_across_members(fits, n_draws=N_DRAWS, seed=SEED)
        lines += [f"## {label}: {len(fits.included)} of {len(fits.members)} members included; excluded: "
                  f"{fits.excluded or 'none'}", format_members(members), ""]
        share = members.sel(quantity="share_releases")
        lines += [f"releases' share: member medians {100 * float(share['member_median_min']):.1f}-"
                  f"{100 * float(share['member_median_max']):.1f} %, pooled 90 % "
                  f"{100 * float(share.sel(structure='pooled')['lower_90']):.1f}-"
                  f"{100 * float(share.sel(structure='pooled')['upper_90']):.1f} %, between-member part "
                  f"{100 * float(share['between_member_fraction']):.0f} %, prior's part "
                  f"{100 * float(share['prior_part']):.0f} %", ""]
    lines.append(f"runtime {time.perf_counter() - started:.0f} s")
    text = "\n".join(lines)
    (Path(__file__).parent / "habitat_and_prior.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
