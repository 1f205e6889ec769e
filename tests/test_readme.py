"""The README says what the tool does: its quickstart YAML is configs/quickstart.yaml, its list
of summary columns is simulator/schema.py's, its sample output is what the commands print.

Each block the README quotes sits between ``<!-- name: ... -->`` and ``<!-- end name -->``
markers; a failure says which command's output to paste there.
"""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

import simulator.reproduce.report as report_module
from simulator.cli import cli
from simulator.schema import SUMMARY

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
QUICKSTART = REPO / "configs" / "quickstart.yaml"


def block(name: str) -> str:
    """The README's text between ``<!-- name...-->`` and ``<!-- end name -->``."""
    match = re.search(rf"<!-- {name}\b.*?-->\n(.*?)<!-- end {name} -->", README, re.DOTALL)
    assert match, f"README.md has no <!-- {name} --> ... <!-- end {name} --> block"
    return match.group(1)


def test_quickstart_yaml_in_the_readme_is_the_file() -> None:
    shown = re.search(r"`configs/quickstart.yaml`:\n\n```yaml\n(.*?)```", README, re.DOTALL)
    assert shown, "README.md: no ```yaml block after `configs/quickstart.yaml`:"
    assert shown.group(1) == QUICKSTART.read_text(encoding="utf-8"), (
        "README.md's quickstart YAML differs from configs/quickstart.yaml: paste the file"
    )


def test_readme_lists_every_summary_column_in_order() -> None:
    listed = re.search(r"`summary.parquet` \(one row per\s+scheme and trial: `([^`]*)`", README)
    assert listed, "README.md: no column list after `summary.parquet` (one row per scheme..."
    names = [name.strip() for name in listed.group(1).split(",")]
    assert names == [column.name for column in SUMMARY], "copy simulator/schema.py SUMMARY"


def _printed_claims(tmp_path, monkeypatch) -> str:
    """What ``gcsim reproduce --out results/reference`` prints for the committed
    results/reference/claims.json (the experiments themselves are not rerun)."""

    def reproduce(target, budget, jobs):
        target.mkdir(parents=True)
        shutil.copy(REPO / "results" / "reference" / "claims.json", target / "claims.json")
        return target / "REPORT.md"

    monkeypatch.setattr(report_module, "reproduce", reproduce)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["reproduce", "--quick", "--out", "results/reference"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_readme_verdicts_are_what_reproduce_prints(tmp_path, monkeypatch) -> None:
    printed = _printed_claims(tmp_path, monkeypatch)
    shown = block("reference-claims")
    assert shown == f"```text\n{printed}```\n", (
        "README.md's reference-claims block differs from what `gcsim reproduce` prints for "
        "results/reference/claims.json: paste this in its ```text block:\n" + printed
    )


def _markdown_table(trials: int | None, tmp_path) -> str:
    args = ["run", str(QUICKSTART), "--out", str(tmp_path / "run"), "--format", "markdown"]
    if trials is not None:
        args += ["--set", f"trials={trials}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.stdout[: result.stdout.index("\n", result.stdout.index("\n\ndecoded/") + 2) + 1]


def test_readme_quickstart_table_has_the_tool_layout(tmp_path) -> None:
    """Headers, schemes and caption as the tool prints them (the numbers: the slow test)."""
    printed = _markdown_table(30, tmp_path).splitlines()
    shown = block("quickstart-table").splitlines()
    assert shown[2] == printed[2]  # the header row
    assert [row.split(" | ")[0] for row in shown[4:8]] == [r.split(" | ")[0] for r in printed[4:8]]
    assert shown[-1] == printed[-1]  # the caption: the rules of the statistics


@pytest.mark.slow
def test_readme_quickstart_table_is_what_the_tool_prints(tmp_path) -> None:
    printed = _markdown_table(None, tmp_path)
    assert block("quickstart-table") == printed, (
        "paste the output of `gcsim run configs/quickstart.yaml --format markdown` (up to the "
        "timing line) into README.md's quickstart-table block:\n" + printed
    )
