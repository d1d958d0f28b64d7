"""Parameter specs: the grammar, every chapter's spec, and bad values stopping before any work."""

from __future__ import annotations

import math
from typing import Any

import pytest

from companion import chapters, pipeline
from companion import spec as specs

# ---------------------------------------------------------------- the grammar


@pytest.mark.parametrize(
    ("text", "good", "bad"),
    [
        ("float in (0, 2)", [0.1, 1, 1.999], [0, 2, -1, 2.5, True, "abc", None, [1.0], math.nan]),
        ("float in [0, 2]", [0, 0.0, 2, 2.0], [-1e-9, 2.000001]),
        ("float in [0, 1)", [0, 0.5], [1, 1.0, -0.1]),
        ("float in (0, 1]", [1, 1e-9], [0, 1.1]),
        ("int in [0, 2**31)", [0, 2**31 - 1], [-1, 2**31, 1.0, True, False]),
        ("int >= 1", [1, 10**9], [0, -3, 1.5, True, "1"]),
        ("int > 0", [1], [0]),
        ("float > 0", [1e-300, 3], [0, -1, math.inf, "0.5"]),
        ("float <= -1", [-1, -5.5], [0, -0.5]),
        ("float < 1e-3", [0.0, -2], [1e-3, 1]),
        ("float", [-1e300, 0, 2], [math.inf, math.nan, "x", True]),
        ("bool", [True, False], [0, 1, "true", None]),
        ("str", ["", "Fig. 2"], [1, None, True, ["a"]]),
        ("one of sgd, momentum, nesterov, adamw", ["sgd", "adamw"], ["SGD", "adam", 1, None]),
        ("list of int >= 0", [[0], [1, 2, 3]], [[], [-1], [0, 1.5], [True], 0, "0", None]),
        ("list of float in (0, 2)", [[0.1, 1], [1]], [[], [0.1, 2], [0], 0.5]),
        ("list of one of forward, backward", [["forward"], ["backward", "forward"]], [[], ["sideways"]]),
        ("int >= 1 or none", [None, 3], [0, "none", True]),
        ("float > 0 or list of float > 0", [1e-5, [1e-5, 1e-4]], [0, [], [0.1, -1], "x"]),
    ],
)
def test_validate_good_and_bad(text: str, good: list, bad: list):
    parsed = specs.parse(text)
    for value in good:
        assert specs.validate("p", value, parsed) == value
    for value in bad:
        with pytest.raises(ValueError, match=r"^p: must be "):
            specs.validate("p", value, text)


def test_validate_coerces_int_to_float_and_names_the_range():
    out = specs.validate("h", 1, "float in (0, 2)")
    assert out == 1.0 and isinstance(out, float)
    assert specs.validate("hs", [1, 0.5], "list of float > 0") == [1.0, 0.5]
    assert type(specs.validate("n", 3, "int >= 1")) is int
    with pytest.raises(ValueError) as err:
        specs.validate("h", -1, "float in (0, 2)")
    assert str(err.value) == "h: must be a float in (0, 2), got -1"
    with pytest.raises(ValueError, match=r"steps: must be an int >= 1, got True"):
        specs.validate("steps", True, "int >= 1")
    with pytest.raises(ValueError, match=r"non-empty list of int >= 0, got \[\] \(the list is empty\)"):
        specs.validate("seeds", [], "list of int >= 0")
    with pytest.raises(ValueError, match=r"item 1: -2"):
        specs.validate("seeds", [0, -2], "list of int >= 0")
    with pytest.raises(ValueError, match=r"must be one of cpu, cuda or none, got 'tpu'"):
        specs.validate("device", "tpu", "one of cpu, cuda or none")


@pytest.mark.parametrize(
    "text",
    ["", "integer", "float between 0 and 2", "float in (2, 0)", "float in (0, 0)", "int >= x",
     "float > 1 + 1", "list of", "list of list of int", "one of a b", "int in [0, 1", 3],
)  # fmt: skip
def test_parse_rejects_bad_specs(text: Any):
    with pytest.raises(ValueError):
        specs.parse(text)


def test_parse_reads_bounds():
    item = specs.parse("int in [0, 2**31)").alternatives[0][1]
    assert (item.kind, item.lo, item.hi, item.lo_open, item.hi_open) == ("int", 0, 2**31, False, True)
    item = specs.parse("float > -1e-3").alternatives[0][1]
    assert (item.lo, item.hi, item.lo_open) == (-1e-3, None, True)
    assert [f for f, _ in specs.parse("list of int >= 1 or none").alternatives] == ["list", "none"]


def test_rules():
    assert specs.check_rule("reset_at < steps", {"reset_at": 1, "steps": 2})
    assert not specs.check_rule("reset_at < steps", {"reset_at": 2, "steps": 2})
    assert specs.check_rule("0 < a <= b", {"a": 1, "b": 1})
    assert specs.check_rule("c * rho > 1", {"c": 10.0, "rho": 0.9})
    assert not specs.check_rule("c * rho > 1", {"c": 1.05, "rho": 0.9})
    assert specs.check_rule("len(a) == len(b)", {"a": [1, 2], "b": [3, 4]})
    assert not specs.check_rule("len(a) == len(b)", {"a": [1, 2], "b": [3]})
    assert specs.check_rule("a < b", {"a": None, "b": 1})  # an unset optional value
    assert specs.parse_rule("len(xs) <= n - 1")[1] == {"xs", "n"}
    for bad in ["a", "a < b(c)", "a < 'x'", "a <", "a in b", "__import__('os') == 1"]:
        with pytest.raises(ValueError):
            specs.parse_rule(bad)


# ---------------------------------------------------------------- every chapter's spec

CHAPTERS = chapters.chapters()
PROFILES = ["book", "paper"]


def test_every_chapter_has_a_spec_covering_exactly_its_parameters():
    assert len(CHAPTERS) == 24  # the sources in notebooks/ and their variants
    for name, src in CHAPTERS.items():
        table, rules = chapters.parameter_spec(src)
        assert set(table) == chapters.declared(src), name
        assert "profile" in table
        # rules name declared parameters only (parameter_spec checks), and parse
        for rule in rules:
            assert specs.parse_rule(rule)[1] <= set(table)


def test_spec_cell_follows_the_parameters_cell_and_is_hidden():
    for name, src in CHAPTERS.items():
        cells = chapters.notebook(src).cells
        at = [i for i, c in enumerate(cells) if chapters.SPEC_TAG in c.metadata.get("tags", [])]
        assert len(at) == 1, name
        assert "parameters" in cells[at[0] - 1].metadata["tags"], name
        assert "remove-cell" in cells[at[0]].metadata["tags"], name


@pytest.mark.parametrize("profile", PROFILES)
def test_defaults_and_profiles_validate(profile: str):
    for name, src in CHAPTERS.items():
        table, rules = chapters.parameter_spec(src)
        merged = {**chapters.defaults(src), **chapters.parameters(name, profile)}
        for key, value in merged.items():
            specs.validate(key, value, table[key])
        assert all(specs.check_rule(r, merged) for r in rules), name


def _bad_values(parsed: specs.Spec) -> list[Any]:
    """Values that break the spec, built from it: out of range, wrong type, unknown choice,
    empty list, a list with a bad item; those another alternative accepts are dropped."""
    out: list[Any] = []
    for form, item in parsed.alternatives:
        if form == "none":
            continue
        if item.kind == "bool":
            scalar = [1, "yes"]
        elif item.kind == "str":
            scalar = [3, True]
        elif item.kind == "choice":
            scalar = ["no-such-choice", 1]
        else:
            scalar = [True, "abc"] + ([1.5] if item.kind == "int" else [math.inf])
            if item.lo is not None:
                scalar.append(item.lo if item.lo_open else item.lo - 1)
            if item.hi is not None:
                scalar.append(item.hi if item.hi_open else item.hi + 1)
        if form == "list":
            out += [[], *[[v] for v in scalar], scalar[0]]
        else:
            out += [*scalar, [scalar[0]], None]
    kept = []
    for value in out:
        try:
            specs.validate("x", value, parsed)
        except ValueError:
            kept.append(value)
    return kept


CASES = [
    (name, param, text)
    for name, src in CHAPTERS.items()
    for param, text in chapters.parameter_spec(src)[0].items()
]


@pytest.mark.parametrize(("name", "param", "parsed"), CASES, ids=[f"{n}-{p}" for n, p, _ in CASES])
def test_every_bad_value_stops_with_the_parameter_named(name: str, param: str, parsed: specs.Spec):
    bad = _bad_values(parsed)
    # wrong types exist for every kind of spec; numbers get their range's edges besides
    assert len(bad) >= 3, (param, parsed.text)
    for value in bad:
        with pytest.raises(ValueError) as err:
            chapters.parameters(name, "book", {param: value})
        text = str(err.value)
        assert text.startswith(f"{name}: {param}: must be {parsed.describe()}, got "), text
        assert "(from the override -p)" in text


def test_the_source_of_a_bad_value_is_named(tmp_path, monkeypatch):
    (tmp_path / "book.yaml").write_text("constant_maps_and_quadratic:\n  h: 2.5\n")
    monkeypatch.setattr(chapters, "PARAMS", tmp_path)
    with pytest.raises(ValueError, match=r"h: must be a float in \(0, 2\), got 2.5 \(from the profile"):
        chapters.parameters("constant_maps_and_quadratic", "book")
    # a relation between two parameters names both and where each came from
    (tmp_path / "book.yaml").write_text("fig3_reset:\n  steps: 100\n")
    with pytest.raises(ValueError, match=r"reset_at < steps, got reset_at = 1000 from the default"):
        chapters.parameters("fig3_reset", "book")


def _chapter(tmp_path, params: str, spec: str) -> Any:
    src = tmp_path / "toy.py"
    src.write_text(
        '# %% [markdown]\n# # Toy\n\n# %% tags=["parameters"]\n' + params + "\n\n"
        '# %% tags=["parameter-spec", "remove-cell"]\n' + spec + "\n\n# %%\nprint(1)\n"
    )
    return src


def test_a_spec_must_match_the_parameters_cell(tmp_path):
    params = 'profile = "default"\nsteps = 3\nh_min, h_max = 0.1, 1.0'
    good = 'spec = {"profile": "str", "steps": "int >= 1", "h_min": "float > 0", "h_max": "float > 0"}'
    table, rules = chapters.parameter_spec(_chapter(tmp_path, params, good + '\nrules = ["h_min < h_max"]'))
    assert set(table) == {"profile", "steps", "h_min", "h_max"} and rules == ["h_min < h_max"]
    bad = {
        'spec = {"profile": "str", "h_min": "float > 0"}': "missing",
        good[:-1] + ', "lr": "float > 0"}': "undeclared",
        good.replace("int >= 1", "integer"): "spec of steps",
        good + '\nrules = ["h_min < lr"]': "undeclared",
        good + "\nx = 1": "may only assign",
        'spec = {"profile": str}': "literal",
    }
    # the book's shared names need no entry; a chapter may restrict one
    shared, _ = chapters.parameter_spec(
        _chapter(tmp_path, params, 'spec = {"h_min": "float > 0", "h_max": "float > 0"}')
    )
    assert set(shared) == {"profile", "steps", "h_min", "h_max"}
    assert shared["steps"] == specs.parse(specs.SHARED["steps"])
    own, _ = chapters.parameter_spec(_chapter(tmp_path, params, good.replace("int >= 1", "int >= 2")))
    assert own["steps"] == specs.parse("int >= 2")
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message):
            chapters.parameter_spec(_chapter(tmp_path, params, text))


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(("value", "shown"), [("-1", "got -1"), ("abc", "got 'abc'")])
def test_cli_stops_a_bad_override_before_running(monkeypatch, capsys, value: str, shown: str):
    import papermill

    def never(*args, **kwargs):
        raise AssertionError("a chapter was executed")

    monkeypatch.setattr(papermill, "execute_notebook", never)
    assert pipeline.main(["run", "constant_maps_and_quadratic", "-p", "h", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: constant_maps_and_quadratic: h: must be a float in (0, 2), ")
    assert shown in err and "override" in err


def test_cli_values_read_exponents_as_numbers():
    # YAML 1.1 would leave 1e-5 a string, which the spec would then reject
    assert pipeline._value("1e-5") == 1e-5 and pipeline._value("[1e-5, 2E3]") == [1e-5, 2000.0]
    assert pipeline._value("abc") == "abc" and pipeline._value("-1") == -1
    assert pipeline._value("true") is True and pipeline._value("[0, 1]") == [0, 1]
