"""Pages the pipeline writes from the executed chapters: "Claims at a glance", "Reproduce",
"What the book finds", the landing page's first screen, ``claims.json``/``.csv`` and the
forest plot (the last four through :mod:`companion.summary`).

All are generated at every ``python -m companion build`` from what the chapters left
in their outputs (claims, run cards) and stamps (profile, parameters, wall time), so they
cannot drift from the chapters. They are build products, not sources: git ignores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import chapters, cost, robustness, stamps, summary
from .claims import MACHINE_KEY
from .claims import METADATA_KEY as CLAIMS_KEY
from .runcard import CARD_KEY
from .summary import GENERATED
from .summary import cell as _cell

__all__ = [
    "CLAIMS_CSV",
    "CLAIMS_JSON",
    "CLAIMS_PAGE",
    "FINDINGS_PAGE",
    "FOREST",
    "GLANCE",
    "REPRODUCE_PAGE",
    "Chapter",
    "claims_page",
    "executed",
    "reproduce_page",
    "write",
]

CLAIMS_PAGE = chapters.BOOK / "claims.md"
REPRODUCE_PAGE = chapters.BOOK / "reproduce.md"
FINDINGS_PAGE = chapters.BOOK / "findings.md"
GLANCE = chapters.BOOK / "at_a_glance.md"  # included by book/intro.md: the landing page's first screen
CLAIMS_JSON, CLAIMS_CSV = chapters.BOOK / "claims.json", chapters.BOOK / "claims.csv"
FOREST = chapters.BOOK / "figures" / "forest.svg"


@dataclass(frozen=True)
class Chapter:
    """What an executed chapter says about itself."""

    name: str
    part: str
    doc: str  # the page's path relative to book/, without suffix (for {doc} links)
    title: str
    stamp: dict[str, Any]
    card: dict[str, str]
    claims: list[dict[str, Any]]
    csv: bool
    machine: list[dict[str, Any]] = field(default_factory=list)  # claims.machine: timings


def _title(nb: dict) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ValueError("chapter has no '# ' title in a markdown cell")


def executed() -> list[Chapter]:
    """The executed chapters, in the order of ``_toc.yml``."""
    out = []
    by_doc = {str(chapters.output_path(src).relative_to(chapters.BOOK).with_suffix("")): name
              for name, src in chapters.chapters().items()}  # fmt: skip
    for doc in _toc_order():
        name = by_doc.get(doc)
        path = chapters.BOOK / f"{doc}.ipynb"
        if name is None or not path.is_file():
            continue
        nb = json.loads(path.read_text())
        card, claims, machine = {}, [], []
        for cell in nb["cells"]:
            for output in cell.get("outputs", []):
                meta = output.get("metadata", {})
                card = meta.get(CARD_KEY, card)
                claims += meta.get(CLAIMS_KEY, [])
                machine += meta.get(MACHINE_KEY, [])
        out.append(Chapter(name, doc.split("/")[0], doc, _title(nb), nb["metadata"].get(stamps.META) or {},
                           card, claims, path.with_suffix(".csv").is_file(), machine))  # fmt: skip
    return out


def _toc_order() -> list[str]:
    return [str(Path(f).relative_to("book")) for f in chapters.toc() if f.startswith("book/")]


def _badge(c: dict) -> str:
    """The verdict as a coloured badge (sphinx-design), its word always written out."""
    v = summary.verdict(c)
    return f"{{{summary.VERDICT_STYLE[v]['badge']}}}`{v}`"


def _scale(ch: Chapter) -> str:
    card = ch.card
    parts = [f"profile `{ch.stamp.get('profile', card.get('profile', '?'))}`"]
    for key in ("scale", "model", "data", "seeds"):
        if card.get(key):
            parts.append(f"{key}: {card[key]}")
    return "; ".join(parts)


def _tally(claims: list[dict]) -> str:
    """A chapter's claims in one line: its counted findings by verdict, then its checks."""
    found = [c for c in claims if summary.evidence(c)]
    parts = []
    if found:
        by = {v: sum(summary.verdict(c) == v for c in found) for v in ("agrees", "inconclusive", "disagrees")}
        parts.append(f"{len(found)} finding{'s' * (len(found) != 1)}: "
                     + ", ".join(f"{n} {v}" for v, n in by.items() if n))  # fmt: skip
    other = [c for c in claims if c["kind"] == "finding" and not summary.evidence(c)]
    if other:
        parts.append(f"{len(other)} not counted")
    checks = [c for c in claims if c["kind"] == "check"]
    if checks:
        parts.append(
            f"{len(checks)} check{'s' * (len(checks) != 1)}, {sum(c['passed'] for c in checks)} hold"
        )
    return "; ".join(parts)


def _note(c: dict) -> str:
    if c.get("same_as"):
        return f" (the same computation as {c['same_as']}: counted there)"
    if c["kind"] == "finding" and not c.get("counted", True):
        return " (not evidence: see the chapter)"
    return ""


def claims_page(pages: list[Chapter]) -> str:
    """The "Claims at a glance" page (MyST Markdown): counts, the forest plot, downloads, and
    every claim grouped by part and chapter in collapsed boxes, each row linking to the
    chapter's claims section."""
    k = summary.counts(pages)
    lines = [
        "# Claims at a glance",
        "",
        f"% {GENERATED}",
        "",
        "Every claim cell of every executed chapter, in one place. A **check** is what the book",
        "asserts (a closed form, a bound, an invariant of the engine): the chapter raises if it",
        "fails, so every published check holds. A **finding** compares a measurement with the",
        "paper's claim at the book's scale and is published whichever way it goes: measured over",
        "seeds it *agrees* when its two-sided 95% t-interval lies on the paper's side of the",
        "threshold, *disagrees* when it lies on the other side, and is *inconclusive* when it",
        "contains the threshold. A finding that repeats another chapter's computation is counted",
        "once; one whose networks never trained is shown and not counted.",
        "",
        f"{k.sentence()}",
        "",
        "Download every claim as {download}`claims.json <claims.json>` or",
        "{download}`claims.csv <claims.csv>` (one record per claim: chapter, statement, measured",
        "value, interval, threshold, verdict).",
        "",
        *summary.forest_figure(pages, "figures/forest.svg", "fig-forest-claims"),
        "",
    ]
    for part, title in summary.PARTS.items():
        group = [ch for ch in pages if ch.part == part and (ch.claims or ch.machine)]
        if not group:
            continue
        lines += [f"## {title}", ""]
        for ch in group:
            tally = _tally(ch.claims)
            if ch.machine:  # speed targets: shown, never counted among the findings
                met = sum(c["passed"] for c in ch.machine)
                tally += ("; " if tally else "") + f"{len(ch.machine)} targets of this machine: {met} met"
            lines += [
                f":::{{dropdown}} {ch.title} — {tally}",
                "",
                f"{{doc}}`Open the chapter <{ch.doc}>`; measured at: {_cell(_scale(ch))}.",
                "",
                "| paper | statement | measured | criterion | verdict |",
                "|---|---|---|---|---|",
            ]
            machine = " (measured on the machine that built the book; not re-checked by CI)"
            for c, note in [*((c, _note(c)) for c in ch.claims), *((c, machine) for c in ch.machine)]:
                ref = f"{{ref}}`{_cell(c['source'])} <claims-{ch.name}>`"
                lines.append(
                    f"| {ref} | {_cell(c['statement'])}{note} | {_cell(summary.value(c))} "
                    f"| {_cell(c['criterion'])} | {_badge(c)} |"
                )
            lines += ["", ":::", ""]
    return "\n".join(lines) + "\n"


def _experiment_cost(params: dict[str, Any]) -> float | None:
    """Workload of an experiment chapter's parameters (``describe.workload`` × seeds), or
    None for chapters that do not train through ``experiment.Experiment``'s recorded grid."""
    from backward_lib import describe

    exp = cost.experiment(params)
    return None if exp is None else describe.workload(exp)["cost"] * len(params["seeds"])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 100 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 3600:,.0f} h ({seconds / 86400:,.0f} days)"


def _changes(book_params: dict, paper_params: dict) -> str:
    keys = [k for k in paper_params if k != "profile" and book_params.get(k) != paper_params[k]]
    return "; ".join(f"{k} {book_params.get(k)!r} → {paper_params[k]!r}" for k in keys) or "none"


def _papermill_yaml(name: str) -> str:
    """A chapter's ``paper`` parameters as the one-line YAML papermill's ``-y`` takes."""
    return yaml.safe_dump(chapters.parameters(name, "paper"), default_flow_style=True, width=10**4).strip()


def reproduce_page(pages: list[Chapter]) -> str:
    """The "Reproduce" page (MyST Markdown): profiles, commands, measured and expected times."""
    rows, total, total_paper, total_gpu = [], 0.0, 0.0, 0.0
    for ch in pages:
        src = chapters.chapters()[ch.name]
        defaults = chapters.defaults(src)
        used = {**defaults, **(ch.stamp.get("parameters") or {})}
        paper = {**defaults, **chapters.parameters(ch.name, "paper")}
        # a chapter that loads its experiments took their compute time once, when they were stored
        wall = float(ch.stamp.get("wall_time_s") or 0.0) + store_seconds(ch.stamp.get("results") or [])
        total += wall
        estimate = "same settings" if _changes(used, paper) == "none" else "not extrapolated"
        experiment = ch.part == "experiments"  # chapters that train through the engine's grid
        cost_used = _experiment_cost(used) if experiment else None
        cost_paper = _experiment_cost(paper) if experiment else None
        if cost_used and cost_paper:
            ratio = cost_paper / cost_used
            total_paper += wall * ratio
            estimate = f"≈ {_duration(wall * ratio)} on this CPU (workload × {ratio:,.0f})"
        device = ch.card.get("device", "?")
        gpu = cost.paper_cost(ch.name) if experiment else None
        gpu_text = "CPU" if gpu is None else f"{gpu.flops / 1e15:,.0f} PFLOP, ≈ {gpu.gpu_hours:,.1f} h"
        total_gpu += 0.0 if gpu is None else gpu.gpu_hours
        rows.append(f"| {{doc}}`{ch.name} <{ch.doc}>` | {_duration(wall)} | {_cell(device)} "
                    f"| {_cell(_changes(used, paper))} | {estimate} | {gpu_text} |")  # fmt: skip
    lines = [
        "# Reproduce",
        "",
        f"% {GENERATED}",
        "",
        "## Two commands",
        "",
        "```bash",
        "make book   # .venv with the pinned requirements, data, execute every chapter, render _build/html",
        "make test   # ruff, unit tests, re-execute the chapters (nbval), stamps current, HTML, browser test",
        "```",
        "",
        "One chapter, with a profile and parameter overrides (each chapter's run card states the",
        "command that produced it):",
        "",
        "```bash",
        ".venv/bin/python -m companion run fig3_reset --profile paper",
        ".venv/bin/python -m companion run fig3_reset -p seeds '[0]' -p steps 500",
        "```",
        "",
        "The same without the pipeline, with papermill, on a chapter source converted by jupytext:",
        "",
        "```bash",
        "jupytext --to ipynb notebooks/experiments/fig3_reset.py -o /tmp/fig3.ipynb",
        f"papermill /tmp/fig3.ipynb /tmp/fig3_out.ipynb -y '{_papermill_yaml('fig3_reset')}'",
        "```",
        "",
        "## Numerics",
        "",
        "Every chapter here was executed, and `make test` re-checks it, with the AVX2 kernels of",
        "torch, MKL and oneDNN and two threads (`companion/numerics.py`: `ATEN_CPU_CAPABILITY=avx2`,",
        "`MKL_CBWR=AVX2,STRICT`, `ONEDNN_MAX_CPU_ISA=AVX2`, `OMP_NUM_THREADS=2`), so that machines of",
        "one kind compute the same bits. Across kinds they do not: MKL's AVX2 branch exists on Intel",
        "CPUs only (elsewhere its own dispatch runs), and oneDNN's convolutions have no reproducible",
        "mode. The store's MLP runs written on an AMD machine are reproduced on an Intel Xeon only",
        "under MKL's `AUTO,STRICT` branch, and its CNN runs under neither; a network trained for",
        "hundreds of steps then follows another trajectory (`verify` below says which stored steps",
        "a CPU does not reproduce). `benchmarks/numerics.py` fingerprints the bits per kernel set",
        "and measures what pinning more would cost (here 1.65× per MLP step for MKL's one",
        "vendor-neutral branch, 2.0× per ResNet-18 step with convolutions outside oneDNN too). A",
        "verdict must not",
        "depend on that: `make robust` re-executes every chapter",
        "with torch's generic kernels instead (`BOOK_NUMERICS=reference`: other bits in every",
        "operation) and compares every verdict line;",
        "`BOOK_NUMERICS=native` pins nothing, for runs on other hardware (their stamps then say so",
        "by not matching).",
        "",
        *robustness_section(pages),
        "",
        *store_section(pages),
        "",
        "## Profiles",
        "",
        "- **`book`** (`params/book.yaml`): what this book publishes, on a 2-core CPU without a",
        "  GPU. Theory chapters at the paper's settings with fewer realizations; the MLP chapters",
        "  (Fig. 3, A.2, A.6) at the paper's width, steps and seeds, forward recorded at every step",
        "  and backward every 10; the convolutional networks with the paper's optimizer, learning",
        "  rate and batch size at a smaller width and with fewer recorded steps (and, where the",
        "  compute did not reach, fewer steps and seeds): each run card, and the table on the",
        "  {doc}`landing page <intro>`, says which.",
        "  CIFAR is replaced by Fashion-MNIST at 3×32×32 where it cannot be downloaded, and the",
        "  chapter says so at the top. The budget chosen for it is ten to twenty CPU hours",
        "  of training on this 2-core machine, computed in pieces (the store resumes) with two",
        "  one-thread Ray workers; the store table above says what each configuration took. It",
        "  goes to the paper's steps and seeds for the MLP, Fig. 2's ResNet-18 with SGD and with",
        "  AdamW, VGG-19 (A.3) and ResNet-50 (A.4, at the width where it leaves chance in 2000",
        "  steps, evaluated every 100 steps); to 5000 steps for A.7's longer run; and to one control,",
        "  A.3's VGG-19 at Fig. 2's learning rate.",
        "- **`paper`** (`params/paper.yaml`): the paper's settings. Experiment chapters set",
        "  `device: cuda` and chain batching (16–64 backward chains advanced together), need the",
        "  real CIFAR-10/100 (torchvision downloads them) and never substitute data. They need a",
        "  CUDA GPU (their memory use has not been measured: no GPU was available to this build);",
        "  the theory chapters run on a CPU, with more realizations than in `book`.",
        "",
        f"The `book` profile took **{_duration(total)}** of execution here, chapter by chapter below",
        "(the stamps' wall times, measured by the pipeline on the device each run card names, plus",
        "the compute time of the store files a chapter reads; a file shared by chapters on one",
        "configuration counts for each of them, so this total overstates).",
        "The paper's experiments cost far more because backward recomputes every chain from",
        "θ₀: recording every step of 2000 means about 2000²/2 = 2·10⁶ map applications per seed",
        "and order instead of the book's 10⁵, at full width. The estimates below scale each",
        "chapter's measured time by that workload (`describe.workload`: map applications × batch",
        "plus evaluated examples, times the model's parameter count). They are CPU times and an",
        "overestimate even there: a small network uses the CPU less efficiently than a full-width",
        "one. On a GPU the chains run batched (`chain_batch`), which these figures leave out",
        "(see *On a GPU* below).",
        "",
        f"Sum of the experiment estimates: **{_duration(total_paper)}** of CPU time.",
        "",
        "## At the paper's scale",
        "",
        "The last column of the table below is each experiment chapter's model FLOPs at its `paper`",
        "settings (torch's FLOP counter over one training and one evaluation pass at full width,",
        "times every map application and evaluated example of every order and seed) and the GPU",
        f"hours they take at an assumed sustained {cost.ASSUMED_RATE / 1e12:.0f} TFLOP/s: "
        f"{cost.UTILIZATION:.0%} of an H100-class",
        "GPU's 67 TFLOP/s FP32 peak, the fraction of its peak the engine sustains on this CPU for",
        "ResNet-18 (Performance chapter). This is an extrapolation, not a measurement: no GPU was",
        "lent to the sessions that built the book. Divide the FLOPs by your own rate to redo it.",
        f"All experiment chapters together: **≈ {total_gpu:,.0f} GPU hours**.",
        "",
        "On one GPU, a chapter at the paper's settings is one command; on a Ray cluster with GPU",
        "workers, run from any node of it, its chains and seeds go to the workers as Ray tasks",
        "(each asks for a GPU because the `paper` profile says `device: cuda`), and every finished",
        "recorded step is written to the results store, so a lost worker loses only unfinished",
        "chains:",
        "",
        "```bash",
        ".venv/bin/python -m companion run fig2_resnet18 --profile paper",
        cost.cluster_command("fig2_resnet18"),
        "```",
        "",
        *_gpu_section(),
        "",
        "## Chapters",
        "",
        "Chapters by their name in `python -m companion run <name>`.",
        "",
        "| chapter | time (`book`) | device | `paper` profile changes | `paper` estimate "
        "| `paper` on a GPU |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


RESULTS = chapters.ROOT / "results"


def store_seconds(keys: list[str], root: Path = RESULTS) -> float:
    """What computing the store files ``keys`` took (their lines' wall times)."""
    total = 0.0
    for key in keys:
        path = root / f"{key}.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines()[1:]:
                try:
                    total += float(json.loads(line).get("seconds", 0.0))
                except json.JSONDecodeError:
                    continue
    return total


def store_section(pages: list[Chapter], root: Path = RESULTS) -> list[str]:
    """The committed results store, one row per configuration (its seeds' files together): the
    chapters that read it, what it holds, and what computing it took (the store's own clock)."""
    readers: dict[str, list[str]] = {}
    for ch in pages:
        for key in ch.stamp.get("results") or []:
            readers.setdefault(key, []).append(ch.name)
    groups: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*.jsonl")) if root.is_dir() else []:
        lines = path.read_text().splitlines()
        head = json.loads(lines[0])
        cfg = {k: v for k, v in head["config"].items() if k != "seed"}
        empty = {"cfg": cfg, "seeds": set(), "orders": {}, "steps": 0, "seconds": 0.0, "users": set()}
        g = groups.setdefault(json.dumps(cfg, sort_keys=True), empty)
        g["seeds"].add(head["config"]["seed"])
        g["users"] |= set(readers.get(path.stem, []))
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a killed run's torn last line
            g["orders"].setdefault(row["order"], None)
            g["steps"] += 1
            g["seconds"] += float(row.get("seconds", 0.0))
    rows = []
    for g in groups.values():
        c = g["cfg"]
        size = (
            f"MLP {c['depth']}×{round(c['hidden'] * c['width'])}"
            if c["model"] == "mlp"
            else f"{c['model']} ×{c['width']}"
        )
        users = ", ".join(f"`{u}`" for u in sorted(g["users"])) or "none (unused)"
        what = f"{_cell(size)}, {_cell(c['dataset'])}, {c['steps']} steps"
        rows.append(f"| {users} | {what} | {len(g['seeds'])} | {_cell(', '.join(g['orders']))} "
                    f"| {g['steps']:,} | {_duration(g['seconds'])} |")  # fmt: skip
    total = sum(g["seconds"] for g in groups.values())
    return [
        "## The results store",
        "",
        "Experiment results live in `results/`, committed with the book: one file per experiment",
        "configuration and seed, keyed by the configuration, a digest of the library code that",
        "computes results (`backward_lib.provenance`) and torch's version. A chapter loads what is",
        "stored and current and computes only the rest; a killed run resumes; a change to the step,",
        "the model or the data makes the old files stale, and they are never read again.",
        "Chapters on one configuration share its file (Fig. 3, A.2 and A.6 share the MLP's forward",
        "run, and steps that two orders compute alike are computed once).",
        "",
        "`python -m companion verify` (in `make test`) checks that every file is current and",
        "complete and that every chapter's results are stored, then recomputes from scratch a",
        "seeded sample: for every configuration one seed, its first recorded step, and one",
        "recorded step of every order, backward's from the last quarter of its grid (its costliest",
        "chains); `--all` recomputes everything. Recomputed",
        "values must match within 2·10⁻⁴ absolute for accuracies and prediction changes (two test",
        "predictions) and 10⁻⁴ relative otherwise; on the machine that wrote the store, with one",
        "thread under the pinned numerics, they match exactly. On another kind of CPU only the",
        "first recorded step of each file (one map from θ₀) must match; later steps that it does",
        "not reproduce are listed, not failed (`verify --strict` fails them, for the writer's",
        "machine).",
        "",
        f"Computing what is stored took **{_duration(total)}** (the store's clock: wall time per",
        "recorded step, on this machine's two cores, two Ray workers where the run used them).",
        "",
        "| chapters | configuration | seeds | orders | recorded steps | compute |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def robustness_section(pages: list[Chapter], path: Path = robustness.RECORD) -> list[str]:
    """What ``python -m companion robust`` found, chapter by chapter (``book/robustness.json``):
    current entries only count; a chapter executed again since its check is listed as unchecked."""
    record = robustness.load(path)
    rows, unchecked, flipped = [], [], 0
    for ch in pages:
        e = record.get(ch.name)
        if e is None or e.get("stamp") != ch.stamp.get("stamp"):
            unchecked.append(_cell(ch.title))
            continue
        flips = "; ".join(f"{f['claim']}: {f['published']} → {f['rerun']}" for f in e["flipped"])
        flipped += bool(e["flipped"])
        note = _cell(f" ({flips})") if flips else ""
        counts = f"{e['claims']} | {e['changed']} | {len(e['flipped'])}{note}"
        rows.append(f"| {_cell(ch.title)} | {counts} | {e['date']} |")
    lines = [
        "### Verdicts under other round-off",
        "",
        "`python -m companion robust [chapters] --executor ray` re-executes chapters on torch's",
        "generic kernels with every experiment recomputed (in a store of its own,",
        "`results-reference/`), and compares each claim with the published one",
        "(`book/robustness.json`). A chapter counts as checked while its published execution is",
        "the one that was compared.",
        "",
    ]
    if not rows:
        return [*lines, "No chapter has a current check."]
    lines += [
        f"**{len(rows)} of {len(pages)} chapters checked, {flipped} with a flipped verdict.**",
        "The third column says how many measured values the other kernels changed: a chapter",
        "where none changed would not have been tested.",
        "",
        "| chapter | claims compared | measured values changed | verdicts flipped | checked |",
        "|---|---|---|---|---|",
        *rows,
    ]
    if unchecked:
        lines += ["", "Not checked at the published execution: " + ", ".join(unchecked) + "."]
    return lines


GPU_RESULT = chapters.ROOT / "benchmarks" / "gpu.json"


def _gpu_section(path: Path = GPU_RESULT) -> list[str]:
    """The GPU check's figures (``benchmarks/gpu_check.py``, committed as ``gpu.json``), or
    a plain statement that none was measured."""
    lines = ["## On a GPU", ""]
    if not path.is_file():
        return [
            *lines,
            "Not measured: no GPU was lent to the sessions that built this book. The prepared",
            "check is `python benchmarks/gpu_check.py` (a few minutes on one GPU): chain batching",
            "against the sequential engine on CUDA for the MLP and ResNet-18, and chain-steps per",
            "second at the paper's width for Fig. 2 (`chain_batch` 8, 32, 64) and Fig. 3; its JSON",
            "line, saved as `benchmarks/gpu.json`, fills this section.",
        ]
    r = json.loads(path.read_text())
    rows = [f"| {_cell(k.replace('_', ' '))} | {v:,.0f} |" for k, v in r["chain_steps_per_s"].items()]
    agree = ", ".join(f"{k} {v:.1e}" for k, v in r["agreement"].items())
    return [
        *lines,
        f"Measured with `benchmarks/gpu_check.py` on {_cell(r['device'])} (torch {r['torch']}).",
        f"Batched against sequential on CUDA, largest relative difference: {agree} "
        f"(tolerance {r['tolerance']:.0e}; {'agree' if r['agree'] else '**disagree**'}).",
        *([f"Peak GPU memory: {r['memory_gib']} GiB."] if "memory_gib" in r else []),
        "",
        "| chain-steps per second | |",
        "|---|---|",
        *rows,
    ]


def write() -> list[Path]:
    """Write every generated page and file; return their paths."""
    done = executed()
    summary.forest(done, FOREST)
    written = {
        CLAIMS_PAGE: claims_page(done),
        REPRODUCE_PAGE: reproduce_page(done),
        FINDINGS_PAGE: summary.findings_page(done),
        GLANCE: summary.glance(done),
        CLAIMS_JSON: summary.to_json(done),
        CLAIMS_CSV: summary.to_csv(done),
    }
    for path, text in written.items():
        path.write_text(text)
    return [*written, FOREST]
