"""docs/model.md documents exactly the defaults the code uses."""

from __future__ import annotations

from conftest import ROOT

from simulator.scenario.reference import BEGIN, END, parameter_table
from simulator.scenario.schema import Scenario


def test_parameter_table_in_docs_matches_the_schema():
    text = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:stop] == parameter_table(), (
        "docs/model.md is out of date: regenerate the table with "
        "`python -m simulator.scenario.reference`"
    )


def test_every_default_has_a_source_or_is_labelled_an_assumption():
    table = parameter_table()
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert len(rows) > 60
    for row in rows:
        source = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert source.strip(), f"no source for {row.split(' | ')[0]}"


def test_resolved_scenario_round_trips():
    """The resolved scenario written to summary.json loads back to the same scenario."""
    scn = Scenario()
    again = Scenario.model_validate(scn.model_dump(mode="json", by_alias=True))
    assert again == scn
