"""Regenerate the stored reference outputs (run by hand, never by pytest):

    python tests/reference/regenerate.py

Writes default_fit.json: the default fit's theta (estimation scale) and its NLL by component.
The regression test evaluates the objective at that theta (no re-fit) and compares.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from carpmodel.inference.build import build_spec
from carpmodel.inference.fitting import fit
from carpmodel.inference.likelihood import nll_components
from carpmodel.io.config import default_config
from carpmodel.io.inputs import load_data

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = load_data(HERE.parents[1] / "data")
    spec = build_spec(data, default_config())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(spec)
    components = {k: float(v) for k, v in nll_components(spec, result.theta).items()}
    record = {"parameter_names": list(result.parameter_names), "theta": result.theta.tolist(),
              "nll_components": components, "data_sha256": data.sha256}
    (HERE / "default_fit.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {HERE / 'default_fit.json'}: NLL {sum(components.values()):.10f}")


if __name__ == "__main__":
    main()
