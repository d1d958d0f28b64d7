"""What a reader of the built book sees first: scale, data and verdicts on the landing page's
first screen, the forest plot, the claims page as a tool, "What the book finds", figures with
captions and alt text at 2× resolution, and references with links.

Runs in the same headless Chromium as ``test_site.py`` (its fixtures), after the HTML build.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request

import pytest
import yaml
from test_site import browser, site  # noqa: F401 (pytest fixtures, shared with the site test)

from companion import chapters

CHAPTER_PAGES = [f"{f}.html" for f in chapters.toc() if (chapters.ROOT / f).with_suffix(".ipynb").is_file()]
# how the book numbers its own figures ("Book figure 3": "Fig. 2" is the paper's), from _config.yml
_NUMFIG = yaml.safe_load((chapters.ROOT / "_config.yml").read_text())["sphinx"]["config"]["numfig_format"]
FIGURE_NUMBER = re.compile(re.escape(_NUMFIG["figure"]).replace("%s", r"\d+"))

FIRST_SCREEN = """
const main = document.querySelector("main") || document.body;
const screen = window.innerHeight;
const starts = (re) => [...main.querySelectorAll("p, li, h1, h2, table")]
  .filter(e => re.test(e.innerText)).map(e => e.getBoundingClientRect().top + window.scrollY);
return {
  screen: screen,
  reproduced: starts(/^What is reproduced\\./),
  verdicts: starts(/^Verdicts\\./),
  data: starts(/^Data\\./),
  verdictText: ([...main.querySelectorAll("p")].find(p => /^Verdicts\\./.test(p.innerText))
                || {}).innerText || "",
  forest: [...main.querySelectorAll("img")].filter(i => /forest/.test(i.src))
          .map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt})),
};
"""


def _go(driver, base: str, page: str) -> None:
    driver.set_window_size(1280, 1000)
    driver.get(urllib.parse.urljoin(base, page))


def test_landing_page_states_scale_data_and_verdicts_in_its_first_screen(site: str, browser) -> None:  # noqa: F811
    _go(browser, site, "book/intro.html")
    f = browser.execute_script(FIRST_SCREEN)
    for key in ("reproduced", "verdicts", "data"):
        assert f[key], f"landing page: no '{key}' paragraph"
        assert min(f[key]) < f["screen"], f"landing page: '{key}' starts below the first screen ({f[key]})"
    pattern = r"(\d+) findings: (\d+) agree with the paper, (\d+) are inconclusive and (\d+) disagree"
    counts = re.search(pattern, f["verdictText"])
    assert counts, f"no verdict counts in {f['verdictText']!r}"
    n, agree, open_, disagree = map(int, counts.groups())
    assert n == agree + open_ + disagree > 0
    assert f["forest"] and all(i["ok"] for i in f["forest"]), (
        "the forest plot is missing from the landing page"
    )
    assert f["forest"][0]["alt"].startswith("Forest plot of")


def _json(href: str) -> dict:
    with urllib.request.urlopen(href, timeout=30) as r:
        return json.loads(r.read())


CLAIMS_FACTS = """
const main = document.querySelector("article") || document.querySelector("main");
const boxes = [...main.querySelectorAll("details.sd-dropdown")];
const rows = boxes.flatMap(b => [...b.querySelectorAll("tbody tr")]);
return {
  boxes: boxes.length,
  open: boxes.filter(b => b.open).length,
  rows: rows.length,
  linked: rows.filter(r => [...r.querySelectorAll("a")].some(a => /#claims-/.test(a.href))).length,
  badged: rows.filter(r => r.querySelector(".sd-badge")).length,
  colours: [...new Set([...main.querySelectorAll(".sd-badge")]
            .map(b => getComputedStyle(b).backgroundColor))],
  json: ([...main.querySelectorAll("a")].find(a => /claims\\.json$/.test(a.href)) || {}).href || "",
  csv: ([...main.querySelectorAll("a")].find(a => /claims\\.csv$/.test(a.href)) || {}).href || "",
  text: main.innerText,
  forest: [...main.querySelectorAll("img")].filter(i => /forest/.test(i.src) && i.naturalWidth > 0).length,
  parts: [...main.querySelectorAll("h2")].map(h => h.innerText.replace(/#$/, "").trim()),
};
"""


def test_claims_page_is_a_reader_tool(site: str, browser) -> None:  # noqa: F811
    _go(browser, site, "book/claims.html")
    f = browser.execute_script(CLAIMS_FACTS)
    assert f["boxes"] >= len(CHAPTER_PAGES) - 1 and f["open"] == 0, "chapters in collapsed boxes"
    assert f["parts"][:2] == ["Theory", "Experiments"], f["parts"]
    assert f["rows"] > 100 and f["linked"] == f["rows"] == f["badged"], (
        "every row: a link and a coloured verdict"
    )
    assert len(f["colours"]) >= 3, f"verdict colours: {f['colours']}"
    assert f["forest"] == 1
    body = _json(f["json"])
    assert f["csv"], "no CSV download"
    counts = body["counts"]
    assert f"{counts['findings']} findings: {counts['agree']} agree" in f["text"]
    assert len(body["claims"]) == f["rows"]  # the same claims as the page, machine targets included
    assert any(c["chapter"] == "engine_speed" for c in body["claims"]), "the Performance chapter's claims"


def test_what_the_book_finds_links_each_result_to_its_chapters(site: str, browser) -> None:  # noqa: F811
    _go(browser, site, "book/findings.html")
    sections = browser.execute_script("""
      return [...document.querySelectorAll("main section section")].map(s => ({
        title: (s.querySelector("h2") || {}).innerText || "",
        chapters: [...s.querySelectorAll("a.reference.internal")]
                  .filter(a => /#claims-|\\.html$/.test(a.href)).length,
        evidence: /Evidence: \\d+ of \\d+ findings support this/.test(s.innerText)}));""")
    assert len(sections) >= 3, sections
    for s in sections:
        assert s["evidence"] and s["chapters"] > 0, s


FIGURE_FACTS = """
const main = document.querySelector("main");
return [...main.querySelectorAll("img")].filter(i => !/forest/.test(i.src)).map(i => {
  const fig = i.closest("figure");
  return {src: i.src, alt: i.alt, natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
          caption: fig && fig.querySelector("figcaption") ? fig.querySelector("figcaption").innerText : ""};
});
"""


@pytest.mark.parametrize("page", CHAPTER_PAGES)
def test_figures_have_numbered_captions_alt_text_and_2x_pixels(site: str, browser, page: str) -> None:  # noqa: F811
    _go(browser, site, page)
    problems = []
    for img in browser.execute_script(FIGURE_FACTS):
        name = img["src"].rsplit("/", 1)[-1]
        if not FIGURE_NUMBER.match(img["caption"]):
            problems.append(f"{name}: no numbered caption ({img['caption'][:60]!r})")
        if not img["alt"] or re.fullmatch(r"[0-9a-f]{32,}(\.png)?", img["alt"]) or len(img["alt"]) < 20:
            problems.append(f"{name}: alt text {img['alt']!r} does not say what it shows")
        if not name.endswith(".svg") and img["natural"] < 1.9 * img["shown"]:
            problems.append(f"{name}: {img['natural']} px drawn at {img['shown']:.0f} px (blurry on HiDPI)")
    assert not problems, f"{page}:\n" + "\n".join(problems)


def test_every_reference_has_a_doi_or_url(site: str, browser) -> None:  # noqa: F811
    _go(browser, site, "book/bibliography.html")
    entries = browser.execute_script("""
      return [...document.querySelectorAll("main .citation, main dl.citation > dd, main div.citation")]
        .map(e => ({text: e.innerText.slice(0, 80), links: [...e.querySelectorAll("a")].map(a => a.href)
                    .filter(h => /^https?:/.test(h) && !/#/.test(h))}));""")
    assert len(entries) >= 5, entries
    bare = [e["text"] for e in entries if not e["links"]]
    assert not bare, "references without a DOI or URL:\n" + "\n".join(bare)
