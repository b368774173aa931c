"""Figures quoted in the docs come from results files: a quoted number that no longer matches its
file fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = ROOT / "experiments" / "01_fit_baseline"


def _script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_assessment_core_tables_in_the_readme_are_the_results_file():
    core = _script(EXPERIMENT / "assessment_core.py")
    record = json.loads((EXPERIMENT / "assessment_core.json").read_text())
    readme = (EXPERIMENT / "README.md").read_text()
    start = readme.index("<!-- assessment_core tables: generated, do not edit by hand -->\n")
    end = readme.index("<!-- end of generated tables -->")
    quoted = readme[start:end].split("\n", 1)[1]
    assert quoted.strip() == core.markdown(record).strip()
    # the acceptance figures of issue #13, read from the file
    assert record["fit"]["default"]["converged"]
    assert 0.7 <= record["fit"]["default"]["residuals"]["sdnr"] <= 1.3
    assert record["hindcast"]["2019"]["mase_persistence"] < 0.40
    assert record["selftest"]["replicates"] >= 200
    for row in record["selftest"]["quantities"].values():
        assert 0.90 <= row["coverage"] <= 0.99
