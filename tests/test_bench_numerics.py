"""benchmarks/numerics.py: its fingerprints are a function of the bits, and its comparison of two
machines' runs says which agree."""

from __future__ import annotations

import copy
import importlib.util
import pathlib

import pytest

PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "numerics.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_numerics", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(prints: dict[str, str]) -> dict:
    return {"sets": {"pinned": {"fingerprints": prints}}}


def test_compare_names_the_fingerprints_that_differ(bench):
    mine = _run({"gemm": "a", "conv": "b", "mlp": "c", "resnet18": "d"})
    theirs = copy.deepcopy(mine)
    assert bench.compare(mine, theirs) == {"pinned": dict.fromkeys(bench.FINGERPRINTS, True)}
    theirs["sets"]["pinned"]["fingerprints"]["conv"] = "other"
    assert bench.compare(mine, theirs)["pinned"] == {**dict.fromkeys(bench.FINGERPRINTS, True), "conv": False}
    assert bench.compare(mine, {"sets": {}}) == {}  # a set the other run did not measure


def test_fingerprint_is_the_same_for_the_same_bits_and_differs_for_one_ulp(bench):
    import torch

    a, b = bench._forward("mlp", 3), bench._forward("mlp", 3)
    assert bench._digest(*a.values()) == bench._digest(*b.values())
    b = {k: v.clone() for k, v in b.items()}
    first = next(iter(b))
    b[first].view(-1)[0] = torch.nextafter(b[first].view(-1)[0], torch.tensor(float("inf")))
    assert bench._digest(*a.values()) != bench._digest(*b.values())


def test_bad_arguments_name_the_option(bench, capsys, tmp_path):
    with pytest.raises(SystemExit):
        bench.parse_args(["--sets", "pinned", "fast"])
    assert "--sets" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--compare", str(tmp_path / "missing.json")])
    assert "--compare" in capsys.readouterr().err
