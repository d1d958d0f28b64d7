"""Generated pages: the claims page lists every claim, the reproduce page extrapolates honestly."""

from __future__ import annotations

import json
import re

from backward_lib import describe, record
from backward_lib.experiment import Experiment
from companion import chapters, pages


def _claim(source, statement, passed, kind="finding", measured=1.0, verdict=None):
    verdict = verdict or ({True: "AGREES", False: "DISAGREES"}[passed] if kind == "finding" else "x")
    return {"source": source, "statement": statement, "kind": kind, "passed": passed,
            "measured": measured, "criterion": "measured ≤ 1", "verdict": verdict}  # fmt: skip


def _chapter(name, doc, claims, stamp=None, card=None):
    part = doc.split("/")[0]
    return pages.Chapter(
        name, part, doc, f"Title {name}", stamp or {"profile": "book"}, card or {}, claims, False
    )


def test_claims_page_groups_chapters_by_part_with_badges_and_links():
    a = _chapter("a", "theory/a", [_claim("Fig. 1", "x | y", True, "check"), _claim("Fig. 1", "z", True)])
    b_claims = [
        _claim("Fig. 2", "p", True),
        _claim("Fig. 2", "q", False),
        _claim("Fig. 3", "r", False, measured="nan"),
        _claim("Fig. 4", "s", True, "check"),
        _claim("Fig. 5", "u", False, verdict="INCONCLUSIVE"),
    ]
    b = _chapter("b", "experiments/b", b_claims)
    text = pages.claims_page([a, b])
    assert (
        "**5 findings: 2 agree with the paper, 1 are inconclusive and 2 disagree**. 2 checks, 2 hold." in text
    )
    # parts in the book's order, one collapsed box per chapter with its tally in the title
    assert text.index("## Theory") < text.index(":::{dropdown} Title a") < text.index("## Experiments")
    assert (
        ":::{dropdown} Title b — 4 findings: 1 agrees, 1 inconclusive, 2 disagrees; 1 check, 1 hold" in text
    )
    box = text.split(":::{dropdown} Title b")[1].split("\n:::\n")[0]
    assert box.count("\n| {ref}`Fig.") == 5  # one row per claim, each linking to the claims section
    assert "{ref}`Fig. 2 <claims-b>`" in box and "{bdg-danger}`disagrees`" in box
    assert "{bdg-muted}`inconclusive`" in box and "{bdg-success}`holds`" in box
    assert "x \\| y" in text  # a pipe inside a cell is escaped
    assert "| nan |" in box
    assert "{download}`claims.json <claims.json>`" in text and "figures/forest.svg" in text


def test_claims_page_lists_every_claim_of_every_executed_chapter():
    """Against the committed book: each chapter's verdict lines are its claims on the page."""
    executed = pages.executed()
    assert {c.name for c in executed} == set(chapters.chapters())
    text = pages.claims_page(executed)
    for ch in executed:
        nb = json.loads((chapters.BOOK / f"{ch.doc}.ipynb").read_text())
        lines = [line for cell in nb["cells"] for out in cell.get("outputs", [])
                 if out.get("output_type") == "stream"
                 for line in "".join(out["text"]).splitlines()
                 if re.match(r"(PASS|FAIL|AGREES|DISAGREES|INCONCLUSIVE)  \[", line)]  # fmt: skip
        assert ch.claims, f"{ch.name}: no claims in its outputs' metadata"
        assert len(lines) == len(ch.claims), ch.name
        for c in ch.claims:
            assert pages._cell(c["statement"]) in text, (ch.name, c["statement"])


def test_workload_counts_chains():
    exp = Experiment(width=0.1, depth=1, steps=12, orders=("forward", "backward"), record_every=4,
                     forward_every=4, train_eval=10, test_eval=20)  # fmt: skip
    w = describe.workload(exp)
    grid = record.every(4, 12)
    # forward: one pass to the last step; backward: every recorded chain from θ₀
    assert w["applications"] == max(grid) + sum(grid)
    assert w["evaluated"] == 2 * len(grid) * 30
    assert w["cost"] == w["parameters"] * (3 * exp.batch_size * w["applications"] + w["evaluated"])
    wide = describe.workload(Experiment(**{**exp.__dict__, "width": 0.2}))
    assert wide["parameters"] > w["parameters"] and wide["applications"] == w["applications"]


def test_reproduce_page_extrapolates_experiments_only():
    fig3 = _chapter("fig3_reset", "experiments/fig3_reset", [],
                    {"profile": "book", "wall_time_s": 100.0,
                     "parameters": chapters.parameters("fig3_reset", "book")},
                    {"device": "cpu: x86_64, 2 threads"})  # fmt: skip
    theory = _chapter("constant_maps_and_quadratic", "theory/constant_maps_and_quadratic", [],
                      {"profile": "book", "wall_time_s": 10.0,
                       "parameters": chapters.parameters("constant_maps_and_quadratic", "book")})  # fmt: skip
    text = pages.reproduce_page([fig3, theory])
    row = next(line for line in text.splitlines() if "fig3_reset>`" in line)
    ratio = float(re.search(r"workload × ([\d,]+)", row).group(1).replace(",", ""))
    assert ratio > 10  # every backward step recorded instead of every 10th
    assert "record_every 10 → 1" in row and "cpu: x86_64" in row
    row = next(line for line in text.splitlines() if "constant_maps_and_quadratic>`" in line)
    assert row.endswith("| not extrapolated | CPU |") and "realizations 4000 → 20000" in row
    row = next(line for line in text.splitlines() if "fig3_reset>`" in line)
    assert re.search(r"\| [\d,]+ PFLOP, ≈ [\d.,]+ h \|$", row)  # the paper's settings on a GPU
    assert "RAY_ADDRESS=auto python -m companion run fig2_resnet18 --profile paper --executor ray" in text
    assert "papermill /tmp/fig3.ipynb" in text and "width: 1.0" in text


def test_machine_targets_are_listed_but_not_counted():
    timing = {
        **_claim("Performance", "engine / plain loop ≥ 1.5", False, measured=1.2),
        "criterion": "measured ≥ 1.5",
    }
    ch = _chapter("perf", "performance/perf", [_claim("Performance", "same iterates", True, "check")])
    ch.machine.append(timing)
    text = pages.claims_page([ch])
    assert "**0 findings: 0 agree" in text and "1 checks, 1 hold" in text  # timings not counted
    assert ":::{dropdown} Title perf — 1 check, 1 hold; 1 targets of this machine: 0 met" in text
    row = next(line for line in text.splitlines() if "engine / plain loop" in line)
    assert "measured on the machine that built the book; not re-checked by CI" in row
    assert "| 1.2 | measured ≥ 1.5 | {bdg-danger}`disagrees` |" in row


def test_gpu_section_reads_the_committed_check_or_says_none_was_run(tmp_path):
    missing = "\n".join(pages._gpu_section(tmp_path / "gpu.json"))
    assert "Not measured: no GPU was lent" in missing and "gpu_check.py" in missing
    result = {"device": "cuda: NVIDIA H200", "torch": "2.14.1", "tolerance": 1e-4, "agree": True,
              "agreement": {"mlp": 3e-7, "resnet18": 2e-6}, "memory_gib": 12.5,
              "chain_steps_per_s": {"mlp_sequential": 900.0, "resnet18_batched_64": 12345.6}}  # fmt: skip
    (tmp_path / "gpu.json").write_text(json.dumps(result))
    text = "\n".join(pages._gpu_section(tmp_path / "gpu.json"))
    assert (
        "cuda: NVIDIA H200" in text
        and "mlp 3.0e-07, resnet18 2.0e-06" in text
        and "(tolerance 1e-04; agree)" in text
    )
    assert "| resnet18 batched 64 | 12,346 |" in text and "12.5 GiB" in text


def test_store_section_groups_seeds_and_names_readers(tmp_path):
    from backward_lib import store

    keys = []
    for seed in (0, 1):
        st = store.Store({"model": "mlp", "depth": 5, "hidden": 500, "width": 1.0, "dataset": "fashion_mnist",
                          "steps": 20, "seed": seed}, tmp_path, code="c")  # fmt: skip
        for n in (1, 2):
            st.append("forward", [{"step": n, "metric": "loss", "value": 1.0}])
        keys.append(st.key)
    fig3 = _chapter("fig3_reset", "experiments/fig3_reset", [], {"profile": "book", "results": keys})
    text = "\n".join(pages.store_section([fig3], tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| `fig3_reset`"))
    assert "MLP 5×500, fashion_mnist, 20 steps | 2 | forward | 4 |" in row
    assert pages.store_seconds(keys, tmp_path) >= 0.0 and "verify" in text


def test_duplicate_findings_are_counted_once():
    a = _chapter("fig3_reset", "experiments/fig3_reset", [_claim("Fig. 3", "after: x", True)])
    dup = {**_claim("A.6", "after: x", True), "same_as": "Fig. 3"}
    b = _chapter("a6_delayed", "experiments/a6_delayed", [dup, _claim("A.6", "y", False)])
    text = pages.claims_page([a, b])
    assert (
        "**2 findings: 1 agree with the paper" in text
        and "1 more repeat another chapter's computation" in text
    )
    assert "(the same computation as Fig. 3: counted there)" in text


def test_cost_builder_configures_what_each_chapter_ran():
    """``cost.experiment`` (the Reproduce page's costs, the paper profile's tests) rebuilds an
    experiment chapter's configuration from its parameters; the store files that configuration
    keys must be ones the executed chapter read, or the page costs a different experiment.
    (The approximation chapters build variants of their own and are costed by workload only.)"""
    from dataclasses import replace

    from backward_lib.experiment import CODE, store_config
    from backward_lib.store import config_key, header
    from companion import cost, stamps

    checked = 0
    for name, src in chapters.chapters().items():
        params = {**chapters.defaults(src), **chapters.parameters(name, "book")}
        exp = cost.experiment(params)
        meta = stamps.stored(chapters.output_path(src))
        if exp is None or meta is None or src.parent.name != "experiments":
            continue
        keys = {config_key(header(store_config(replace(exp, seed=s)), CODE)) for s in params["seeds"]}
        assert keys <= set(meta["results"]), name
        checked += 1
    assert checked >= 8  # Fig. 2, Fig. 3, A.2-A.7
