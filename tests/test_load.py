"""Tests for simulator.scenario.load and simulator.errors.

The loader must work with any pydantic model, so these tests use a small demo schema
defined here rather than the real scenario schema.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

import simulator.scenario.load as load_module
from simulator.errors import InputError, format_path
from simulator.scenario.load import (
    OVERRIDE_SOURCE,
    LineMap,
    apply_overrides,
    deep_merge,
    load,
    load_dict,
    read_scenario,
    read_yaml,
    validate,
)

FIXTURES = Path(__file__).parent / "fixtures" / "load"


# --------------------------------------------------------------------------------------
# Demo schema
# --------------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ivig(Strict):
    dose_g_per_kg: float = Field(gt=0)
    interval_weeks: int = 4
    response_prob: float = Field(default=0.5, ge=0, le=1)


class SparingAgent(Strict):
    agent: Literal["methotrexate", "azathioprine", "mycophenolate"]
    start_week: int = Field(default=0, ge=0)


class Regimen(Strict):
    steroid_mg_per_kg: float = Field(gt=0)
    ivig: Ivig | None = None
    sparing_agents: list[SparingAgent] = []


class Fixed(Strict):
    kind: Literal["fixed"]
    weeks: float = Field(gt=0)


class Gamma(Strict):
    kind: Literal["gamma"]
    shape: float = Field(gt=0)
    scale: float = Field(gt=0)


class ByWeeks(Strict):
    every_weeks: int = Field(gt=0)


class ByDoses(Strict):
    doses: list[float]


def _positive(x: float) -> float:
    if x <= 0:
        raise ValueError("dose must be positive")
    return x


class Scenario(Strict):
    name: str
    n_patients: int = Field(gt=0)
    regimen: Regimen
    costs: dict[str, float] = {}
    delay: Annotated[Fixed | Gamma, Field(discriminator="kind")] | None = None
    schedule: ByWeeks | ByDoses | None = None  # untagged union
    booster: Annotated[float, AfterValidator(_positive)] | Literal["auto"] = "auto"
    weeks: int = 52

    @model_validator(mode="after")
    def _enough_weeks(self) -> Scenario:
        if self.weeks < 4:
            raise ValueError("weeks must be at least 4")
        return self


MINIMAL: dict[str, Any] = {
    "name": "x",
    "n_patients": 10,
    "regimen": {"steroid_mg_per_kg": 1.0},
}


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def raises(fn: Any, *args: Any, **kwargs: Any) -> str:
    """Call fn, expect InputError, return its message."""
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------
# errors.py
# --------------------------------------------------------------------------------------


class TestInputError:
    def test_formats(self) -> None:
        assert str(InputError("bad", file="a.yaml", line=3)) == "a.yaml:3: bad"
        assert str(InputError("bad", file="a.yaml")) == "a.yaml: bad"
        assert str(InputError("bad")) == "bad"
        assert str(InputError("bad", line=3)) == "bad"
        err = InputError("bad", path="a.b", file="f", line=1)
        assert (err.message, err.path, err.file, err.line) == ("bad", "a.b", "f", 1)
        assert isinstance(err, Exception)

    def test_problems(self) -> None:
        err = InputError(
            "2 problems in the scenario:", file="a.yaml", problems=["x: bad [line 1]", "y: bad"]
        )
        assert str(err) == ("a.yaml: 2 problems in the scenario:\n  - x: bad [line 1]\n  - y: bad")
        assert err.problems == ["x: bad [line 1]", "y: bad"]

    def test_format_path(self) -> None:
        assert format_path(("regimen", "sparing_agents", 0, "agent")) == (
            "regimen.sparing_agents[0].agent"
        )
        assert format_path(()) == ""
        assert format_path(("visits", 0, 1)) == "visits[0][1]"
        assert format_path((0, "a")) == "[0].a"
        assert format_path(("costs", "drug.ivig")) == "costs['drug.ivig']"


# --------------------------------------------------------------------------------------
# read_yaml
# --------------------------------------------------------------------------------------


class TestReadYaml:
    def test_valid_round_trip(self) -> None:
        data, lm = read_yaml(FIXTURES / "valid.yaml")
        assert data == yaml.safe_load((FIXTURES / "valid.yaml").read_text()) | {
            "delay": {"kind": "gamma", "shape": 2, "scale": 0.15}
        }
        assert lm.line_for(("name",)) == 2
        assert lm.line_for(("regimen", "ivig", "dose_g_per_kg")) == 7
        assert lm.line_for(("regimen", "sparing_agents", 1)) == 13
        assert lm.line_for(("regimen", "sparing_agents", 1, "start_week")) == 14
        # unknown paths fall back to the longest known prefix
        assert lm.line_for(("regimen", "ivig", "no_such_key")) == 6
        assert lm.line_for(("nothing",)) is None
        assert lm.get(("name",)) == (str(FIXTURES / "valid.yaml"), 2)
        model = load(FIXTURES / "valid.yaml", Scenario)
        assert isinstance(model.delay, Gamma)
        assert model.delay.scale == pytest.approx(0.15)
        assert model.regimen.sparing_agents[1].agent == "azathioprine"

    def test_scientific_floats(self, tmp_path: Path) -> None:
        data, _ = read_yaml(write(tmp_path, "a: 1e-3\nb: 2E5\nc: 1.5\nd: 7\ne: '1e3'\n"))
        assert data == {"a": 0.001, "b": 200000.0, "c": 1.5, "d": 7, "e": "1e3"}

    def test_missing_file(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, tmp_path / "nope.yaml")
        assert msg == f"scenario file not found: {tmp_path / 'nope.yaml'}"

    def test_directory(self, tmp_path: Path) -> None:
        assert "is a directory" in raises(read_yaml, tmp_path)

    def test_unreadable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        p = write(tmp_path, "a: 1\n")

        def deny(*args: object, **kwargs: object) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(load_module.os, "open", deny)
        assert raises(read_yaml, p) == f"cannot read scenario file {p}: permission denied"

    def test_not_utf8(self, tmp_path: Path) -> None:
        p = tmp_path / "latin1.yaml"
        p.write_bytes("name: x\nnote: caf\xe9\n".encode("latin-1"))
        msg = raises(read_yaml, p)
        assert msg.startswith(f"{p}:2: ")
        assert "not valid UTF-8" in msg
        assert "0xe9" in msg

    def test_utf16(self, tmp_path: Path) -> None:
        p = tmp_path / "u16.yaml"
        p.write_bytes("name: x\n".encode("utf-16"))
        assert "UTF-16" in raises(read_yaml, p)

    def test_utf8_bom_is_fine(self, tmp_path: Path) -> None:
        p = tmp_path / "bom.yaml"
        p.write_bytes(b"\xef\xbb\xbfname: x\n")
        assert read_yaml(p)[0] == {"name": "x"}

    def test_syntax_error(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            name: x
            regimen:
              ivig: 1
              dose
              other: 2
            """,
        )
        assert raises(read_yaml, p) == (
            f"{p}: YAML syntax error at line 5, column 3: could not find expected ':' "
            "(while scanning a simple key at line 4)"
        )

    def test_mapping_values_not_allowed(self, tmp_path: Path) -> None:
        p = write(tmp_path, "name: x\nregimen:\n  ivig\n  dose: 1\n")
        assert raises(read_yaml, p) == (
            f"{p}: YAML syntax error at line 4, column 7: mapping values are not allowed here"
        )

    def test_tab_indentation(self, tmp_path: Path) -> None:
        p = write(tmp_path, "regimen:\n\tivig: 1\n")
        msg = raises(read_yaml, p)
        assert "line 2" in msg
        assert "tab" in msg

    def test_unclosed_flow(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "a: [1, 2\nb: 3\n"))
        assert "YAML syntax error at line" in msg

    def test_control_character(self, tmp_path: Path) -> None:
        p = tmp_path / "ctl.yaml"
        p.write_text("a: 1\nb: x\x07y\n", encoding="utf-8")
        msg = raises(read_yaml, p)
        assert msg.startswith(f"{p}:2: ")
        assert "#x0007" in msg

    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
    def test_empty(self, tmp_path: Path, text: str) -> None:
        p = tmp_path / "empty.yaml"
        p.write_text(text)
        assert raises(read_yaml, p) == f"{p}: the scenario file is empty"

    def test_top_level_list(self, tmp_path: Path) -> None:
        p = write(tmp_path, "- a\n- b\n")
        assert raises(read_yaml, p) == (
            f"{p}:1: not a scenario (a mapping of keys): the top level must be a mapping of"
            " keys to values, but this file is a list"
        )

    def test_top_level_scalar_is_named_but_not_quoted(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "just some text\n"))
        assert "not a scenario (a mapping of keys)" in msg and "a text string" in msg
        assert "just some text" not in msg

    def test_non_string_key(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            name: x
            costs:
              visit: 1
              1: 3
            """,
        )
        msg = raises(read_yaml, p)
        assert msg.startswith(f"{p}:4: ")
        assert "under 'costs'" in msg
        assert "'1'" in msg
        assert "number" in msg

    def test_boolean_key(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "regimen:\n  on: 1\n"))
        assert ":2: " in msg
        assert "'on'" in msg
        assert "boolean" in msg
        assert 'quotes ("on")' in msg

    def test_complex_key(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "? [a, b]\n: 1\n"))
        assert "keys must be plain text" in msg

    def test_duplicate_top_level(self, tmp_path: Path) -> None:
        p = write(tmp_path, "name: a\nn_patients: 3\nname: b\n")
        assert raises(read_yaml, p) == (
            f"{p}:3: duplicate key 'name' at the top level (first at line 1, again at line 3)"
        )

    def test_duplicate_nested(self) -> None:
        p = FIXTURES / "dup_nested.yaml"
        msg = raises(read_yaml, p)
        assert msg == (
            f"{p}:8: duplicate key 'dose_g_per_kg' in 'regimen.ivig' "
            "(first at line 6, again at line 8)"
        )

    def test_duplicate_in_list_item(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            regimen:
              sparing_agents:
                - agent: a
                - agent: b
                  agent: c
            """,
        )
        msg = raises(read_yaml, p)
        assert "in 'regimen.sparing_agents[1]'" in msg
        assert "line 4" in msg
        assert "line 5" in msg

    def test_duplicate_in_flow_mapping(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "delay: {kind: gamma, kind: fixed}\n"))
        assert "duplicate key 'kind' in 'delay'" in msg

    def test_merge_keys_are_not_duplicates(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            defaults: &d
              dose_g_per_kg: 2
              response_prob: 0.5
            ivig:
              <<: *d
              dose_g_per_kg: 1
            """,
        )
        data, lm = read_yaml(p)
        assert data["ivig"] == {"dose_g_per_kg": 1, "response_prob": 0.5}
        assert lm.line_for(("ivig", "dose_g_per_kg")) == 6
        assert lm.line_for(("ivig", "response_prob")) == 3

    def test_unknown_tag(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "a:\n  b: !!python/object:os.system x\n"))
        assert "a.b" in msg
        assert ":2: " in msg
        assert "unsupported YAML tag" in msg

    def test_invalid_date(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "name: x\nstart: 2024-02-30\n"))
        assert ":2: start: '2024-02-30'" in msg

    def test_recursive_alias(self, tmp_path: Path) -> None:
        msg = raises(read_yaml, write(tmp_path, "a: &x\n  b: *x\n"))
        assert "recursive" in msg

    def test_alias_bomb(self, tmp_path: Path) -> None:
        lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
        lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8)]
        msg = raises(read_yaml, write(tmp_path, "\n".join(lines) + "\n"))
        assert "too many entries" in msg


# --------------------------------------------------------------------------------------
# extends
# --------------------------------------------------------------------------------------


class TestExtends:
    def test_child_overrides_base(self) -> None:
        data, lm = read_scenario(FIXTURES / "child.yaml")
        assert "extends" not in data
        assert data["name"] == "child"  # scalar replaced
        assert data["n_patients"] == 100  # inherited
        # mappings merge recursively
        assert data["regimen"]["ivig"] == {"dose_g_per_kg": 0.4, "response_prob": 0.5}
        assert data["regimen"]["steroid_mg_per_kg"] == 1.0
        # lists are replaced, not merged
        assert [a["agent"] for a in data["regimen"]["sparing_agents"]] == [
            "azathioprine",
            "mycophenolate",
        ]
        assert data["costs"] is None  # null sets None
        base, child = str(FIXTURES / "base.yaml"), str(FIXTURES / "child.yaml")
        assert lm.get(("name",)) == (child, 2)
        assert lm.get(("n_patients",)) == (base, 2)
        assert lm.get(("regimen", "ivig", "dose_g_per_kg")) == (child, 5)
        assert lm.get(("regimen", "ivig", "response_prob")) == (base, 7)
        assert lm.get(("regimen", "sparing_agents", 1, "agent")) == (child, 9)
        assert lm.get(("costs",)) == (child, 10)
        assert lm.get(("costs", "visit")) is None  # base subtree replaced
        assert ("extends",) not in lm
        model = load(FIXTURES / "child.yaml", Scenario, ["costs={}"])
        assert model.regimen.ivig is not None
        assert model.regimen.ivig.dose_g_per_kg == 0.4

    def test_list_applied_in_order(self) -> None:
        data, lm = read_scenario(FIXTURES / "multi.yaml")
        assert data["name"] == "multi"
        assert data["n_patients"] == 300
        assert data["regimen"]["steroid_mg_per_kg"] == 0.5
        assert data["regimen"]["ivig"]["dose_g_per_kg"] == 2
        assert lm.get(("n_patients",)) == (str(FIXTURES / "extra.yaml"), 1)

    def test_cycle(self) -> None:
        a, b = FIXTURES / "cycle_a.yaml", FIXTURES / "cycle_b.yaml"
        msg = raises(read_scenario, a)
        assert msg == f"{b}:2: extends: circular chain of base files: {a} -> {b} -> {a}"

    def test_self_cycle(self) -> None:
        p = FIXTURES / "self_cycle.yaml"
        assert (
            raises(read_scenario, p) == f"{p}:1: extends: circular chain of base files: {p} -> {p}"
        )

    def test_missing_base(self) -> None:
        p = FIXTURES / "missing_base.yaml"
        msg = raises(read_scenario, p)
        assert msg == (
            f"{p}:3: extends: base file not found: 'no_such_base.yaml' "
            f"(looked for {FIXTURES / 'no_such_base.yaml'})"
        )

    def test_missing_base_in_list(self, tmp_path: Path) -> None:
        p = write(tmp_path, "extends:\n  - base.yaml\n  - gone.yaml\n")
        write(tmp_path, "name: b\n", name="base.yaml")
        msg = raises(read_scenario, p)
        assert msg.startswith(f"{p}:3: extends[1]: base file not found: 'gone.yaml'")

    @pytest.mark.parametrize("value", ["3", "['a.yaml', 4]", "''", "{a: 1}"])
    def test_bad_extends_value(self, tmp_path: Path, value: str) -> None:
        msg = raises(read_scenario, write(tmp_path, f"name: x\nextends: {value}\n"))
        assert ":2: extends" in msg or ":3: extends" in msg
        assert "expected a file name" in msg

    def test_error_in_base_names_base_file(self, tmp_path: Path) -> None:
        write(tmp_path, "name: a\nname: b\n", name="base.yaml")
        p = write(tmp_path, "extends: base.yaml\n")
        assert raises(read_scenario, p).startswith(f"{tmp_path / 'base.yaml'}:2: duplicate key")

    def test_validation_error_points_at_base_file(self) -> None:
        msg = raises(load, FIXTURES / "child_bad.yaml", Scenario)
        assert msg == (
            f"{FIXTURES / 'base_bad.yaml'}:4: regimen.steroid_mg_per_kg: "
            "Input should be greater than 0 (got -1.0)"
        )

    def test_deep_merge(self) -> None:
        base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
        child = {"a": {"c": [3], "e": None}, "d": None}
        assert deep_merge(base, child) == {"a": {"b": 1, "c": [3], "e": None}, "d": None}
        assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not mutated


# --------------------------------------------------------------------------------------
# apply_overrides
# --------------------------------------------------------------------------------------


def base_data() -> dict[str, Any]:
    return {
        "name": "x",
        "n_patients": 10,
        "regimen": {
            "steroid_mg_per_kg": 1.0,
            "ivig": None,
            "sparing_agents": [{"agent": "methotrexate"}, {"agent": "azathioprine"}],
        },
    }


class TestOverrides:
    @pytest.mark.parametrize(
        ("override", "loc", "expected"),
        [
            ("n_patients=20", ("n_patients",), 20),
            ("regimen.steroid_mg_per_kg=0.75", ("regimen", "steroid_mg_per_kg"), 0.75),
            ("regimen.steroid_mg_per_kg=1e-2", ("regimen", "steroid_mg_per_kg"), 0.01),
            ("name=true", ("name",), True),
            ("name=null", ("name",), None),
            ("name=hello world", ("name",), "hello world"),
            ("name='42'", ("name",), "42"),
            ("name=a: b", ("name",), "a: b"),
            ("costs={visit: 3, drug: 4.5}", ("costs",), {"visit": 3, "drug": 4.5}),
            ("costs.any_key=3", ("costs", "any_key"), 3),
            ("schedule={doses: [1, 2.5]}", ("schedule",), {"doses": [1, 2.5]}),
            ("schedule.doses=[1, 2]", ("schedule", "doses"), [1, 2]),
            ("delay={kind: gamma, shape: 1, scale: 2}", ("delay", "kind"), "gamma"),
            (
                "regimen.sparing_agents[1].agent=mycophenolate",
                ("regimen", "sparing_agents", 1, "agent"),
                "mycophenolate",
            ),
            (
                "regimen.sparing_agents.1.agent=mycophenolate",
                ("regimen", "sparing_agents", 1, "agent"),
                "mycophenolate",
            ),
            (
                " regimen.sparing_agents[0].start_week = 3 ",
                ("regimen", "sparing_agents", 0, "start_week"),
                3,
            ),
        ],
    )
    def test_values(self, override: str, loc: tuple[Any, ...], expected: Any) -> None:
        data = base_data()
        out = apply_overrides(data, [override], Scenario)
        value: Any = out
        for part in loc:
            value = value[part]
        assert value == expected
        assert type(value) is type(expected)
        assert data == base_data()  # input not mutated

    def test_copy_on_write(self) -> None:
        data = base_data()
        out = apply_overrides(data, ["regimen.sparing_agents[0].agent=azathioprine"], Scenario)
        assert out["regimen"]["sparing_agents"][1] is data["regimen"]["sparing_agents"][1]
        assert data["regimen"]["sparing_agents"][0]["agent"] == "methotrexate"

    def test_creates_absent_intermediates(self) -> None:
        lm = LineMap()
        out = apply_overrides(MINIMAL, ["regimen.ivig.dose_g_per_kg=1"], Scenario, lm)
        assert out["regimen"]["ivig"] == {"dose_g_per_kg": 1}
        out = apply_overrides(MINIMAL, ["delay.kind=fixed", "delay.weeks=2"], Scenario, lm)
        assert out["delay"] == {"kind": "fixed", "weeks": 2}
        assert lm.is_override(("delay", "weeks"))
        assert lm.get(("delay",)) == (OVERRIDE_SOURCE, None)

    def test_a_value_under_a_null_block_is_refused_with_how_to_switch_it_on(self) -> None:
        msg = raises(apply_overrides, base_data(), ["regimen.ivig.dose_g_per_kg=1"], Scenario)
        assert msg == (
            "--set regimen.ivig.dose_g_per_kg=1: regimen.ivig is null (off) in this scenario;"
            " to switch it on set the whole block, e.g. --set"
            " 'regimen.ivig={dose_g_per_kg: 1}'"
        )

    def test_linemap_marks_set(self) -> None:
        data, lm = read_yaml(FIXTURES / "valid.yaml")
        apply_overrides(data, ["regimen.ivig={dose_g_per_kg: 1}"], Scenario, lm)
        assert lm.get(("regimen", "ivig")) == (OVERRIDE_SOURCE, None)
        assert lm.get(("regimen", "ivig", "interval_weeks")) is None
        assert lm.line_for(("regimen", "steroid_mg_per_kg")) == 5

    def test_unknown_key_with_suggestion(self) -> None:
        data = base_data()
        msg = raises(apply_overrides, data, ["regimen.ivig.dose_g_per_k=1"], Scenario)
        assert msg == (
            "--set regimen.ivig.dose_g_per_k=1: unknown key 'dose_g_per_k' under "
            "'regimen.ivig' (did you mean 'dose_g_per_kg'?)"
        )

    def test_unknown_top_level_key(self) -> None:
        msg = raises(apply_overrides, {}, ["n_patient=3"], Scenario)
        assert msg == (
            "--set n_patient=3: unknown key 'n_patient' at the top level "
            "(did you mean 'n_patients'?)"
        )

    def test_unknown_key_lists_allowed(self) -> None:
        msg = raises(apply_overrides, {}, ["regimen.zzz=1"], Scenario)
        assert msg == (
            "--set regimen.zzz=1: unknown key 'zzz' under 'regimen' "
            "(allowed keys: ivig, sparing_agents, steroid_mg_per_kg)"
        )

    def test_union_members(self) -> None:
        # a key valid in any member of a union is accepted
        apply_overrides({}, ["delay.shape=2", "delay.weeks=3"], Scenario)
        msg = raises(apply_overrides, {}, ["delay.shap=2"], Scenario)
        assert "unknown key 'shap' under 'delay' (did you mean 'shape'?)" in msg
        apply_overrides({}, ["schedule.every_weeks=2"], Scenario)

    @pytest.mark.parametrize(
        ("override", "expected"),
        [
            ("n_patients", "--set n_patients: expected KEY=VALUE"),
            ("=3", "--set =3: missing the key path before '='"),
            ("n_patients=", "--set n_patients=: no value after '='"),
            ("regimen..ivig=1", "--set regimen..ivig=1: empty key in the path"),
            ("regimen.=1", "--set regimen.=1: empty key in the path"),
            ("regimen.sparing_agents[x].agent=a", "list index must be a whole number"),
            ("regimen.sparing_agents[0.agent=a", "missing ']'"),
            ("regimen[0]=1", "'regimen' is not a list, so it cannot be indexed with [0]"),
            ("regimen.sparing_agents.agent=a", "'regimen.sparing_agents' is a list; select"),
            ("name.first=a", "'name' is a single value (str), it has no key 'first'"),
            ("costs={a: 1", "--set costs={a: 1: cannot read the value '{a: 1'"),
            ("costs={a: 1, a: 2}", "duplicate key 'a'"),
        ],
    )
    def test_bad_override(self, override: str, expected: str) -> None:
        assert expected in raises(apply_overrides, base_data(), [override], Scenario)

    def test_index_out_of_range(self) -> None:
        msg = raises(apply_overrides, base_data(), ["regimen.sparing_agents[2].agent=a"], Scenario)
        assert msg == (
            "--set regimen.sparing_agents[2].agent=a: index 2 is out of range for "
            "'regimen.sparing_agents' (it has 2 items)"
        )

    def test_index_into_unset_list(self) -> None:
        msg = raises(apply_overrides, MINIMAL, ["regimen.sparing_agents[0].agent=a"], Scenario)
        assert "'regimen.sparing_agents' is not set, so it has no item [0]" in msg

    def test_scalar_in_the_way(self) -> None:
        data = {**MINIMAL, "regimen": 5}
        msg = raises(apply_overrides, data, ["regimen.steroid_mg_per_kg=1"], Scenario)
        assert "'regimen' holds a number (5), not a mapping" in msg

    def test_override_then_validation_error_mentions_set(self, tmp_path: Path) -> None:
        p = FIXTURES / "valid.yaml"
        msg = raises(load, p, Scenario, ["regimen.ivig.dose_g_per_kg=-1"])
        assert msg == (
            f"{p}: regimen.ivig.dose_g_per_kg: Input should be greater than 0 (got -1) [from --set]"
        )
        msg = raises(load, p, Scenario, ["regimen.ivig.dose_g_per_kg=-1", "n_patients=0"])
        assert (
            "  - regimen.ivig.dose_g_per_kg: Input should be greater than 0 (got -1) "
            "[from --set]" in msg
        )
        assert "  - n_patients: Input should be greater than 0 (got 0) [from --set]" in msg

    def test_created_parent_missing_key_mentions_set(self) -> None:
        msg = raises(load, FIXTURES / "valid.yaml", Scenario, ["schedule.every_weeks=0"])
        assert "schedule.every_weeks: Input should be greater than 0 (got 0) [from --set]" in msg

    def test_later_override_wins(self) -> None:
        out = apply_overrides({}, ["n_patients=1", "n_patients=2"], Scenario)
        assert out == {"n_patients": 2}


# --------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------


class TestValidate:
    def test_many_problems(self) -> None:
        p = FIXTURES / "invalid.yaml"
        msg = raises(load, p, Scenario)
        lines = msg.splitlines()
        assert lines[0] == f"{p}: 6 problems in the scenario:"
        assert lines[1:] == [
            "  - n_patients: Input should be greater than 0 (got 0) [line 2]",
            "  - regimen.ivig.dose_g_per_kg: Input should be greater than 0 (got -0.4) [line 6]",
            "  - regimen.ivig.respons_prob: unknown key 'respons_prob' "
            "(did you mean 'response_prob'?) (got 2) [line 7]",
            "  - regimen.sparing_agents[0].agent: Input should be 'methotrexate', "
            "'azathioprine' or 'mycophenolate' (got 'methotrexat') [line 9]",
            "  - regimen.sparing_agents[1].start_week: Input should be greater than or "
            "equal to 0 (got -1) [line 11]",
            "  - costs.ivig: Input should be a valid number, unable to parse string as a "
            "number (got 'lots') [line 13]",
        ]

    def test_single_problem_has_file_and_line(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            name: x
            n_patients: 10
            regimen:
              steroid_mg_per_kg: 1
              ivig:
                dose_g_per_kg: 2
                response_prob: 1.5
            """,
        )
        assert raises(load, p, Scenario) == (
            f"{p}:7: regimen.ivig.response_prob: Input should be less than or equal to 1 (got 1.5)"
        )

    def test_missing_key_reports_parent_line(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            """
            name: x
            n_patients: 10
            regimen:
              ivig: {dose_g_per_kg: 1}
            """,
        )
        assert raises(load, p, Scenario) == (
            f"{p}:3: regimen.steroid_mg_per_kg: required key missing"
        )

    def test_missing_top_level_key(self, tmp_path: Path) -> None:
        p = write(tmp_path, "name: x\nregimen: {steroid_mg_per_kg: 1}\n")
        assert raises(load, p, Scenario) == f"{p}: n_patients: required key missing"

    def test_unknown_key_without_close_match(self) -> None:
        data = {**MINIMAL, "regimen": {"steroid_mg_per_kg": 1, "zzz": 1}}
        assert raises(validate, data, Scenario) == (
            "<dict>: regimen.zzz: unknown key 'zzz' "
            "(allowed keys: ivig, sparing_agents, steroid_mg_per_kg) (got 1)"
        )

    def test_discriminated_union_tag_dropped(self, tmp_path: Path) -> None:
        data = {**MINIMAL, "delay": {"kind": "gamma", "shape": -1, "scale": 1, "shap": 2}}
        msg = raises(validate, data, Scenario, LineMap(), "s.yaml")
        assert "  - delay.shape: Input should be greater than 0 (got -1)" in msg
        assert "  - delay.shap: unknown key 'shap' (did you mean 'shape'?) (got 2)" in msg
        assert "gamma" not in msg.replace("'gamma'", "")

    def test_bad_union_tag(self, tmp_path: Path) -> None:
        p = write(
            tmp_path,
            "name: x\nn_patients: 1\nregimen: {steroid_mg_per_kg: 1}\n"
            "delay:\n  kind: gama\n  shape: 1\n",
        )
        assert raises(load, p, Scenario) == (
            f"{p}:5: delay.kind: should be one of 'fixed', 'gamma' (got 'gama')"
        )

    def test_missing_union_tag(self) -> None:
        msg = raises(validate, {**MINIMAL, "delay": {"shape": 1}}, Scenario)
        assert msg == "<dict>: delay.kind: required key missing"

    def test_untagged_union_member_names_dropped(self) -> None:
        msg = raises(validate, {**MINIMAL, "schedule": {"every_weeks": 0}}, Scenario)
        assert "ByWeeks" not in msg
        assert "ByDoses" not in msg
        assert "schedule.every_weeks: Input should be greater than 0 (got 0)" in msg
        assert "schedule.doses: required key missing" in msg

    def test_function_validator_names_dropped(self) -> None:
        msg = raises(validate, {**MINIMAL, "booster": -2}, Scenario)
        assert "function-after" not in msg
        assert "  - booster: dose must be positive (got -2)" in msg
        assert "  - booster: Input should be 'auto' (got -2)" in msg

    def test_model_validator_message(self) -> None:
        msg = raises(validate, {**MINIMAL, "weeks": 2}, Scenario)
        assert msg == "<dict>: <top level>: weeks must be at least 4"

    def test_submodel_not_a_mapping(self, tmp_path: Path) -> None:
        p = write(tmp_path, "name: x\nn_patients: 1\nregimen: high\n")
        assert raises(load, p, Scenario) == (
            f"{p}:3: regimen: should be a mapping of keys to values (got 'high')"
        )

    def test_long_value_shortened(self) -> None:
        msg = raises(validate, {**MINIMAL, "n_patients": "x" * 200}, Scenario)
        got = msg[msg.index("(got ") + 5 : msg.rindex(")")]
        assert len(got) == 60
        assert got.endswith("...")

    def test_load_dict(self) -> None:
        model = load_dict(MINIMAL, Scenario, ["regimen.ivig.dose_g_per_kg=1"])
        assert model.regimen.ivig == Ivig(dose_g_per_kg=1)
        assert load(None, Scenario, data=MINIMAL) == load_dict(MINIMAL, Scenario)
        msg = raises(load_dict, [1, 2], Scenario, source="api")
        assert msg == "api: the top level must be a mapping of keys to values, got a list"
        msg = raises(load_dict, {"name": "x"}, Scenario, source="api")
        assert msg.startswith("api: 2 problems in the scenario:")

    def test_load_argument_errors(self) -> None:
        with pytest.raises(TypeError):
            load(None, Scenario)
        with pytest.raises(TypeError):
            load(FIXTURES / "valid.yaml", dict)  # type: ignore[type-var]


# --------------------------------------------------------------------------------------
# Properties: valid data round-trips; no bad input escapes as anything but InputError
# --------------------------------------------------------------------------------------

keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
scalars = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.none(),
    st.text("abc xyz-", max_size=8),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


def _leaf_locs(value: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _leaf_locs(v, (*loc, k))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _leaf_locs(v, (*loc, i))]
    return [loc]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, trees, min_size=1, max_size=5))
def test_round_trip_and_lines(fuzz_dir: Path, data: dict[str, Any]) -> None:
    p = fuzz_dir / "rt.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    got, lm = read_yaml(p)
    assert got == data
    for loc in _leaf_locs(data):
        if loc:
            assert lm.get(loc) is not None


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_override_is_applied_or_input_error(override: str) -> None:
    try:
        out = apply_overrides(base_data(), [override], Scenario)
    except InputError as err:
        assert str(err).startswith("--set ")
    else:
        assert out != base_data() or "=" in override


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(
            st.sampled_from(
                [
                    "name: x",
                    "n_patients: 3",
                    "regimen:",
                    "  steroid_mg_per_kg: 1",
                    "  ivig:",
                    "    dose_g_per_kg: -1",
                    "- a",
                    "a: [1, {b: 2}",
                    "  - c",
                    "\t",
                    "x: &a 1",
                    "y: *a",
                    "z: *b",
                    "<<: {q: 1}",
                    "? [1]",
                    ": 2",
                    "2020-01-01: x",
                    "'k': !!int v",
                    "n_patients: 3",
                ]
            ),
            max_size=8,
        ).map("\n".join),
    )
)
def test_any_text_loads_or_input_error(fuzz_dir: Path, text: str) -> None:
    p = fuzz_dir / "fuzz.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load(p, Scenario)
    except InputError as err:
        assert str(err)


def test_plain_numbers_in_an_override_read_as_yaml_reads_them():
    """--set and sweep values that are plain decimals skip the YAML parser: same value,
    same type; anything else (octal-looking, exponent, underscores) still goes to YAML."""
    from simulator.errors import InputError as Err
    from simulator.scenario.load import OVERRIDE_SOURCE, _parse_override_value, _parse_text

    def fail(msg):
        return Err(msg)

    for text in (
        "0",
        "7",
        "-12",
        "0.05",
        "-3.25",
        "10.0",
        "0.30000000000000004",
        "012",
        "1e-05",
        "1.5e3",
        "1_000",
        "+4",
        ".5",
        "5.",
    ):
        got = _parse_override_value(text, fail)
        want, _, _ = _parse_text(text, OVERRIDE_SOURCE)
        assert type(got) is type(want) and got == want, (text, got, want)
