"""The pipeline: parameters, stamps, variants, output tidying."""

from __future__ import annotations

import pytest

from companion import chapters, pipeline, stamps


def test_chapters_and_variants():
    found = chapters.chapters()
    assert "constant_maps_and_quadratic" in found
    variant = found["a3_vgg19"]
    assert variant.suffix == ".yaml"
    nb = chapters.notebook(variant)
    assert nb.cells[0].source.startswith("# Appendix A.3")
    # a variant's own defaults come before the profile's section
    params = chapters.parameters("a3_vgg19", "paper")
    assert params["model"] == "vgg19" and params["profile"] == "paper"


def test_parameters_reject_unknown_names():
    with pytest.raises(ValueError, match="unknown parameter"):
        chapters.parameters("constant_maps_and_quadratic", "book", {"hh": 1})
    with pytest.raises(ValueError, match="profile"):
        chapters.parameters("constant_maps_and_quadratic", "nope")


def test_stamp_follows_source_parameters_and_used_modules():
    src = chapters.chapters()["constant_maps_and_quadratic"]
    p = chapters.parameters("constant_maps_and_quadratic", "book")
    s = stamps.stamp(src, p)
    assert s == stamps.stamp(src, dict(p))
    assert s != stamps.stamp(src, {**p, "seed": 99})
    # how the chains run is not what they compute (the store's key leaves it out too)
    fig2 = chapters.chapters()["fig2_resnet18"]
    q = chapters.parameters("fig2_resnet18", "book")
    ray = chapters.parameters("fig2_resnet18", "book", {"executor": "ray"})
    assert ray["executor"] == "ray" and stamps.stamp(fig2, ray) == stamps.stamp(fig2, q)
    assert stamps.stamp(fig2, {**q, "steps": 10}) != stamps.stamp(fig2, q)
    # which library modules a chapter's stamp follows
    used = stamps._imports(
        "import backward_lib as bl\nfrom backward_lib import orders\nfrom companion import claims\n"
    )
    assert used == {"backward_lib", "backward_lib.orders", "companion", "companion.claims"}
    relative = stamps._imports(
        "from .engine import StepMap\nfrom . import tree\nimport torch\n", "backward_lib.record"
    )
    assert relative == {"backward_lib", "backward_lib.engine", "backward_lib.tree"}
    # the pipeline's mechanics never make a chapter stale; what a chapter computes with does
    code_claims, code_pages = "from companion import claims\n", "from companion import pages\n"
    assert stamps._library_hash(code_pages) == stamps._library_hash("")
    assert stamps._library_hash(code_claims) != stamps._library_hash("")
    # a chapter using only orders does not follow experiment.py; one importing it does
    code_small, code_big = "from backward_lib import orders\n", "from backward_lib import experiment\n"
    assert stamps._library_hash(code_small) != stamps._library_hash(code_big)


def test_output_tidying():
    assert pipeline._clean_stream("a\r50%\r100%\nnext") == "100%\nnext"
    # a progress bar (tqdm's carriage-return updates) leaves nothing behind
    bar = "seed 0:  50%|█████     | 1/2\rseed 0: 100%|██████████| 2/2 [00:01<00:00]\n"
    assert pipeline._clean_stream(bar + "PASS  [x] kept\n") == "PASS  [x] kept\n"
    outs = [
        {"output_type": "stream", "name": "stderr", "text": "\r1%"},
        {"output_type": "stream", "name": "stderr", "text": "\r100%\n"},
        {"output_type": "stream", "name": "stdout", "text": "x"},
    ]
    merged = pipeline._merge_streams(outs)
    assert len(merged) == 2 and merged[0]["text"] == "\r1%\r100%\n"


def test_check_reports_missing_and_stale_chapters(monkeypatch):
    monkeypatch.setattr(pipeline, "stored", lambda out: None)
    problems = pipeline.check("book")
    assert len([p for p in problems if "missing" in p]) == len(chapters.chapters())
    monkeypatch.setattr(pipeline, "stored", lambda out: {"stamp": "0" * 16})
    assert len([p for p in pipeline.check("book") if "stale" in p]) == len(chapters.chapters())


def _display(text: str, metadata: dict | None = None) -> dict:
    return {"output_type": "display_data", "data": {"text/markdown": text}, "metadata": metadata or {}}


def test_finish_fills_the_card_and_writes_the_offered_table(tmp_path):
    import nbformat

    from companion import runcard

    card = runcard.markdown("book", "Fig. 3", seeds="0")
    csv = "order,step\nforward,1\n"
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [_display(card), _display(f"Download: {runcard.CSV_PENDING}", {runcard.TABLE_KEY: csv})]
    nb = nbformat.v4.new_notebook(cells=[cell])
    out = tmp_path / "fig3_reset.ipynb"
    pipeline._finish(nb, {"profile": "book", "seeds": [0]}, 12.34, "abc", out, {"seeds": [0]}, ["k1"])
    text = nb.cells[0].outputs[0]["data"]["text/markdown"]
    assert "12.3 s for the whole chapter" in text
    assert "`python -m companion run fig3_reset --profile book -p seeds '[0]'` (this run)" in text
    assert "`python -m companion run fig3_reset --profile paper` (the paper's settings)" in text
    assert out.with_suffix(".csv").read_text() == csv
    offered = nb.cells[0].outputs[1]
    assert offered["metadata"] == {} and "{download}`fig3_reset.csv`" in offered["data"]["text/markdown"]
    assert nb.metadata["backward_book"]["wall_time_s"] == 12.3
    assert nb.metadata["backward_book"]["results"] == ["k1"]  # the store files it used, for verify
    # a chapter may offer one table; one that no longer offers it loses the stale file
    cell.outputs = [_display("a", {runcard.TABLE_KEY: csv}), _display("b", {runcard.TABLE_KEY: csv})]
    with pytest.raises(ValueError, match="once"):
        pipeline._finish(nb, {"profile": "book"}, 1.0, "abc", out, {}, [])
    cell.outputs = []
    pipeline._finish(nb, {"profile": "book"}, 1.0, "abc", out, {}, [])
    assert not out.with_suffix(".csv").exists()
    # a stream that held only a progress bar is dropped, the chapter's own lines kept
    bar = {"output_type": "stream", "name": "stderr", "text": "\rseed 0: 100%|██████████| 2/2\n"}
    said = {"output_type": "stream", "name": "stdout", "text": "PASS  [x] ok\n"}
    cell.outputs = [nbformat.from_dict(bar), nbformat.from_dict(said)]
    pipeline._finish(nb, {"profile": "book"}, 1.0, "abc", out, {}, [])
    assert [o["name"] for o in cell.outputs] == ["stdout"]


def test_rerun_command_round_trips_through_the_cli():
    import shlex

    overrides = {"seeds": [0, 1], "h": 0.5, "switch": "delayed", "note": "a b"}
    argv = shlex.split(pipeline.command("fig3_reset", "paper", overrides))
    assert argv[:6] == ["python", "-m", "companion", "run", "fig3_reset", "--profile"]
    pairs = dict(zip(argv[8::3], argv[9::3], strict=True))
    assert {k: pipeline._value(v) for k, v in pairs.items()} == overrides


def test_setup_cell_installs_only_where_the_library_is_missing(monkeypatch):
    import importlib.util
    import subprocess

    cell = pipeline.setup_cell("https://example.invalid/repo")
    assert {"remove-cell", pipeline.SETUP_TAG} <= set(cell.metadata["tags"])
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    exec(cell.source, {})
    assert calls == []  # installed here: nothing to do
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    exec(cell.source, {})
    assert calls and calls[0][-1] == "backward_lib @ git+https://example.invalid/repo"


def test_executor_flag_reaches_the_chapters_that_train(monkeypatch, capsys):
    import papermill

    ran = []

    def fake(src, dst, parameters, **kw):
        ran.append(parameters)
        raise RuntimeError("stop after the parameters")

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setattr(pipeline, "stored", lambda out: None)
    with pytest.raises(RuntimeError, match="stop"):
        pipeline.run(["fig3_reset"], "book", {}, force=True, executor="ray")
    assert ran[-1]["executor"] == "ray"
    # a chapter that trains no network has no executor to choose: named explicitly, an error
    assert pipeline.main(["run", "constant_maps_and_quadratic", "--executor", "ray"]) == 2
    assert "has no executor parameter" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--executor"):
        pipeline.run(["fig3_reset"], "book", {}, force=True, executor="gpu")
