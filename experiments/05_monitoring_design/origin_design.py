"""Origin-sample design with marked releases (issue #14 item 5): the README's sample-size table.

    python experiments/05_monitoring_design/origin_design.py \
        --out results/05_monitoring_design/origin_design.json

Fits the bundled data as ``carpmodel fit`` does (:func:`carpmodel.inference.fitting.fit_model`,
about a minute), runs :func:`carpmodel.studies.origin_design.origin_design` on it (seconds),
writes its record (the smallest designs, CV floors, fish a year for 80 % power on c) with the
date and versions, and prints the markdown table the README carries.
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path

import carpmodel
from carpmodel.inference.fitting import fit_model
from carpmodel.io.inputs import BUNDLED_DATA_DIRECTORY, load_data
from carpmodel.io.outputs import write_json_atomic
from carpmodel.studies.origin_design import origin_design, origin_design_record

QUESTIONS = {"share_1_vs_10_percent": "(i) 1 % vs 10 % hatchery share (power 0.8)",
             "release_survival_cv_m_estimated": "(ii) release survival CV 0.2, all estimated",
             "release_survival_cv_m_known": "(ii) release survival CV 0.2, M_ref known",
             "release_survival_cv_m_and_q_known": "(ii) release survival CV 0.2, M_ref and survey q known",
             "lorenzen_c0_vs_c1": "(iii) c = 0 vs c = 1 (power 0.8)"}


def table(record: dict) -> str:
    gears = list(next(iter(record["smallest_designs"].values())))
    lines = ["| question | " + " | ".join(gears) + " |", "|---" * (len(gears) + 1) + "|"]
    for key, text in QUESTIONS.items():
        cells = []
        for g in gears:
            d = record["smallest_designs"][key][g]
            cells.append(d if isinstance(d, str) else
                         f"{d['fish_per_year']}/yr × {d['years_sampled']} yr ({d['value']:.2f})")
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    floor = record["release_survival_cv_floor"]
    for held in ("none", "m_ref", "m_ref_and_survey_q"):
        lines.append(f"| CV floor (1e9 fish/yr), held known: {held} | "
                     + " | ".join(f"{min(floor[held][g].values()):.2f}" for g in gears) + " |")
    need = record["fish_per_year_for_power_lorenzen"]
    lines.append("| (iii) fish a year for power 0.8 over 10 years | "
                 + " | ".join(f"{need[g]['10']:,}" for g in gears) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/05_monitoring_design/origin_design.json"))
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA_DIRECTORY)
    args = parser.parse_args()
    data = load_data(args.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_model(data)
    ds = origin_design(result, data)
    record = origin_design_record(ds)
    record.update(date=datetime.now(UTC).isoformat(timespec="seconds"), carpmodel=carpmodel.__version__,
                  python=platform.python_version())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, record)
    print(table(json.loads(args.out.read_text())))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
