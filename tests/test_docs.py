"""Figures quoted in the docs come from results files: a quoted number that no longer matches its
file fails here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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


def _generated(readme: str, start: str, end: str = "<!-- end of generated block -->") -> str:
    """The text between a generated block's markers (the start marker's line excluded)."""
    return readme[readme.index(start) + len(start):readme.index(end)]


def _paragraph(readme: str, first: str, last: str | None) -> str:
    """The prose from ``first`` up to ``last`` (None: the end), whitespace collapsed (line breaks
    are layout)."""
    text = readme[readme.index(first):readme.index(last) if last is not None else len(readme)]
    return " ".join(text.split())


def _check_experiment(folder: str, script: str, record_file: str, marker: str, first: str,
                      last: str | None = "**The figures quoted above") -> dict:
    """The README's generated block is what the script renders from the committed record, and the
    "What the result shows" paragraph quotes every figure the script says it quotes."""
    experiment = ROOT / "experiments" / folder
    module = _script(experiment / script)
    record = json.loads((experiment / record_file).read_text())
    readme = (experiment / "README.md").read_text()
    block = _generated(readme, f"<!-- {marker}: generated, do not edit by hand -->\n")
    assert block.strip() == module.markdown(record).strip(), \
        f"{folder}/README.md: the generated block differs from {script} --from-json {record_file}"
    prose = _paragraph(readme, first, last)
    missing = [q for q in module.quoted(record) if q not in prose]
    assert not missing, f"{folder}/README.md no longer quotes {missing} from {record_file}"
    for key in ("date", "carpmodel", "numpy", "load_average"):
        assert key in record["machine"]
    return record


def test_the_attribution_figures_in_the_readme_are_the_results_file():
    record = _check_experiment("02_recovery_attribution", "attribution_results.py",
                               "attribution_results.json", "attribution_results", "**What the result shows**")
    # the main README quotes the same ensemble figures (its "What the model can say" section)
    h = record["habitat_and_prior"]
    main = " ".join((ROOT / "README.md").read_text().split())
    (lo, hi), (plo, phi) = h["releases_member_median_range_pct"], h["releases_pooled_90_pct"]
    assert f"{plo:.1f}–{phi:.1f} %" in main and f"member medians {lo:.1f}–{hi:.1f} %" in main
    # the quoted shares are those of a converged fit, and the ban's is the largest
    assert record["fit_converged"]
    shares = record["shares"]
    assert shares["share_ban"]["median"] > shares["share_releases"]["median"]


def test_the_ensemble_tables_in_the_readme_are_the_results_file():
    record = _check_experiment("03_release_strategies", "ensemble_docs.py", "ensemble_docs.json",
                               "ensemble_docs", "**What this says**", None)
    module = _script(ROOT / "experiments" / "03_release_strategies" / "ensemble_docs.py")
    figures = module.figures(record)
    # releases add a few kt at most where reopening the fishery costs tens (the paragraph's claim)
    assert 0 < figures["status_quo"][0] < 10 and figures["reopen_fishing"][0] < -10
    assert record["run"]["draws"] >= 200 and figures["n_included"] >= 15


def test_the_climate_sensitivity_figures_in_the_readme_are_the_results_file():
    record = _check_experiment("04_climate_sensitivity", "sensitivity_results.py",
                               "sensitivity_results.json", "sensitivity_results",
                               "**What the result shows.**")
    effects = record["effects"]
    # issue #16 item 6: the README must not say recruitment dominates when growth does
    strongest = min(("growth", "natural_mortality", "recruitment", "maturity"),
                    key=lambda e: effects[e]["+4C_2100"]["median"])
    readme = (ROOT / "experiments" / "04_climate_sensitivity" / "README.md").read_text()
    if "Growth, not recruitment, dominates" in readme:
        assert strongest == "growth", f"the README says growth dominates; the run says {strongest}"


def test_the_walkthrough_block_in_the_readme_is_the_results_file():
    """experiments/06: the new user's three tasks ran, wrote what they must, and the README's
    block is what walkthrough.py renders from the committed walkthrough.json."""
    experiment = ROOT / "experiments" / "06_new_user_walkthrough"
    module = _script(experiment / "walkthrough.py")
    record = json.loads((experiment / "walkthrough.json").read_text())
    readme = (experiment / "README.md").read_text()
    block = _generated(readme, "<!-- walkthrough: generated, do not edit by hand -->\n")
    assert block.strip() == module.markdown(record).strip()
    assert record["ok"], {name: task["missing"] for name, task in record["tasks"].items()}
    assert set(record["tasks"]) == {"fit", "project", "sensitivity", "fit_2019"}
    # both requested scenarios are in the strategy table, every strategy in each
    table = {(r["scenario"], r["strategy"]) for r in record["strategy_table"]}
    assert table == {(s, t) for s in ("ssp245", "ssp585")
                     for t in ("no_releases", "status_quo", "ten_years_2026_2035")}
    # the refit with data to 2019 printed its skill line (issue #16 item 1)
    assert "MASE against persistence" in record["hindcast_skill_line"]
    note = " ".join(readme[readme.index("## What we looked at"):].split())
    missing = [q for q in module.quoted(record) if q not in note]
    assert not missing, f"06_new_user_walkthrough/README.md no longer quotes {missing} from walkthrough.json"


def test_a_generated_block_is_replaced_between_its_markers_only():
    from carpmodel.report.doc_blocks import END, replace_block, start_marker

    readme = f"intro\n{start_marker('demo')}old table\n{END}\noutro {END}\n"
    assert replace_block(readme, "demo", "new table\n") == \
        f"intro\n{start_marker('demo')}new table\n{END}\noutro {END}\n"
    with pytest.raises(ValueError, match="demo"):
        replace_block("no markers here", "demo", "x")


def test_docs_script_reads_a_run_writes_the_record_and_the_block(tmp_path, monkeypatch, capsys):
    from carpmodel.report.doc_blocks import END, docs_script, start_marker

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{start_marker('demo')}old\n{END}\nrest\n")
    run = tmp_path / "run"
    run.mkdir()

    def script(*argv: str) -> int:
        monkeypatch.setattr("sys.argv", ["demo.py", *argv])
        return docs_script(description="demo", source=("directory", "a run directory", "a run directory"),
                           readme=readme, block="demo", read_run=lambda args: {"n": len(args.source.name)},
                           markdown=lambda record: f"n = {record['n']}\n")

    assert script(str(run), "--json", str(tmp_path / "record.json"), "--write-readme") == 0
    assert json.loads((tmp_path / "record.json").read_text()) == {"n": 3}
    assert readme.read_text() == f"# x\n{start_marker('demo')}n = 3\n{END}\nrest\n"
    assert script("--from-json", str(tmp_path / "record.json")) == 0
    assert capsys.readouterr().out == "n = 3\nn = 3\n"
    with pytest.raises(SystemExit):
        script()
    assert "give a run directory or --from-json FILE" in capsys.readouterr().err
