"""The figures this folder's README quotes, read from a sensitivity run (issue #16 item 6).

    carpmodel fit --out results/main_fit
    carpmodel sensitivity --fit results/main_fit --out results/04_sensitivity
    python experiments/04_climate_sensitivity/sensitivity_results.py results/04_sensitivity \
        --json experiments/04_climate_sensitivity/sensitivity_results.json --write-readme
    python experiments/04_climate_sensitivity/sensitivity_results.py \
        --from-json experiments/04_climate_sensitivity/sensitivity_results.json

Reads ``sensitivity.nc`` (``relative_change``: biomass over the no-temperature-effect reference
− 1, paired by draw) and writes a JSON of the medians and 90 % intervals at strength 1 for every
effect, +2 and +4 °C by 2100, in 2050 and 2100, with the date, versions and machine load; prints
(``--write-readme``: puts into README.md) the generated block that ``tests/test_docs.py`` checks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from carpmodel.report.doc_blocks import docs_script, machine_record

HERE = Path(__file__).resolve().parent
WARMING_C = (2.0, 4.0)
YEARS = (2050, 2100)
#: the README's order and words for each effect
EFFECTS = {"growth": "growth (thermal-performance dome on K)",
           "natural_mortality": "natural mortality (Q10)",
           "recruitment": "recruitment (spawning-temperature dome)",
           "maturity": "maturity (length at 50 %)",
           "all_default": "all default effects together"}


def read_run(directory: Path) -> dict:
    """The quoted figures of one ``carpmodel sensitivity`` output directory."""
    import xarray as xr

    with xr.open_dataset(directory / "sensitivity.nc") as ds:
        ds = ds.load()
    run = json.loads((directory / "run.json").read_text()) if (directory / "run.json").is_file() else {}
    record: dict = {"machine": machine_record(), "source": str(directory / "sensitivity.nc"),
                    "command": run.get("command_line"), "n_draws": int(ds.sizes["draw"]),
                    "seed": int(ds.attrs["seed"]) if "seed" in ds.attrs else None,
                    "runtime_s": run.get("total_s"), "effects": {}}
    for effect in EFFECTS:
        if effect not in ds["effect"].values:
            continue
        cells = {}
        for warming in (0.0, *WARMING_C):
            for year in YEARS:
                cell = ds.sel(effect=effect, strength=1.0, warming_c=warming, year=year)
                cells[f"+{warming:g}C_{year}"] = {
                    k: float(cell[f"relative_change_{k}"]) for k in ("median", "lower", "upper")}
        record["effects"][effect] = cells
    held = re.search(r"T\((\d{4})\) \[([\d.]+) degC, held\]", str(ds.attrs.get("warming", "")))
    record["reference_lake_c"] = float(ds.attrs["reference_lake_c"])
    record["held_lake_c"] = ({"year": int(held.group(1)), "temperature_c": float(held.group(2))}
                             if held else None)
    record["growth_optimum"] = str(ds.attrs["growth_optimum_c"])
    lake = ds["lake_temperature_median_c"]
    record["lake_temperature_median_c_2100"] = {f"+{w:g}C": float(lake.sel(warming_c=w, year=2100))
                                                for w in (0.0, *WARMING_C)}
    return record


def _pct(value: float) -> str:
    text = f"{100 * value:+.0f} %"
    return "0 %" if text in ("+0 %", "-0 %") else text.replace("-", "−")


def quoted(record: dict) -> list[str]:
    """The strings the README's "What the result shows" paragraph must contain, as rendered: the
    medians in 2100 at +4 and +2 °C in the README's order, the +0 °C offset and the temperatures."""
    order = ("growth", "natural_mortality", "recruitment", "maturity", "all_default")
    effects = record["effects"]
    out = [_pct(effects[e]["+4C_2100"]["median"]) for e in order]
    out.append(", ".join(_pct(effects[e]["+2C_2100"]["median"]) for e in order[:-1]) + " and "
               + _pct(effects["all_default"]["+2C_2100"]["median"]))
    out.append(f"({_pct(effects['all_default']['+0C_2100']['median'])} with all effects by 2100)")
    out.append(f"({record['held_lake_c']['temperature_c']:.1f} °C)")
    out.append(f"{record['reference_lake_c']:.1f} °C reference")
    out.append(f"{record['n_draws']} draws")
    return out


def markdown(record: dict) -> str:
    """The README block: relative change at strength 1 by effect, warming and year."""
    m = record["machine"]
    head = [f"+{w:g} °C, {y}" for w in WARMING_C for y in YEARS]
    out = [f"Run {m['date']}, carpmodel {m['carpmodel']}, numpy {m['numpy']}, python {m['python']}, "
           f"load {m['load_average'][0]:.1f} on {m['cpus']} cores; {record['n_draws']} draws, "
           f"seed {record['seed']}. Median change in biomass against the no-effect reference, paired "
           f"by draw (90 % interval), each effect at strength 1:", "",
           "| effect | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for effect, words in EFFECTS.items():
        if effect not in record["effects"]:
            continue
        cells = record["effects"][effect]
        out.append(f"| {words} | " + " | ".join(
            f"{_pct(c['median'])} ({_pct(c['lower'])} to {_pct(c['upper'])})"
            for c in (cells[f"+{w:g}C_{y}"] for w in WARMING_C for y in YEARS)) + " |")
    lake = record["lake_temperature_median_c_2100"]
    held = record["held_lake_c"]
    zero = record["effects"]["all_default"]["+0C_2100"]["median"]
    temperatures = ", ".join(f"{k.replace('C', ' °C')} {v:.1f} °C" for k, v in lake.items())
    optimum = record["growth_optimum"].replace("degC", "°C")
    out += ["", f"Growth optimum: {optimum}. Responses are 1 at the reference "
            f"lake temperature {record['reference_lake_c']:.1f} °C (the fit years' mean); the projection "
            f"holds the lake at its {held['year']} value, {held['temperature_c']:.1f} °C, plus warming, so "
            f"at +0 °C all default effects together change biomass in 2100 by {_pct(zero)}. Median lake "
            f"temperature in 2100: {temperatures}."]
    return "\n".join(out) + "\n"


def main() -> int:
    return docs_script(
        description=__doc__.splitlines()[0], readme=HERE / "README.md", block="sensitivity_results",
        source=("directory", "a `carpmodel sensitivity` output directory", "a sensitivity directory"),
        read_run=lambda args: read_run(args.source), markdown=markdown)


if __name__ == "__main__":
    raise SystemExit(main())
