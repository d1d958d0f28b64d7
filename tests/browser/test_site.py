"""The built book in a real browser, the way a reader uses it, with the network off.

Serves ``_build/html`` on localhost and drives Debian's headless Chromium through its
chromedriver (``scripts/get-browser.sh``; nothing is downloaded). Every request that leaves
localhost is refused (a dead proxy and a resolver that resolves nothing), and every request
the page makes is logged, so a CDN dependency fails the test rather than going unnoticed.

For every page in ``_toc.yml``, at a desktop width (1280 px) and a phone's (390 px): it loads
with its title; every image has loaded; math is typeset by the book's own MathJax with no raw
TeX and no MathJax error left; no output shows a traceback or an error; the text shows no
build debris (test markers, progress bars); nothing is wider than the column unless it is in a
box that scrolls, and nothing is clipped; launch buttons are there exactly when the book has a
repository. Every internal link (and its #anchor) resolves. A full-page screenshot of each
page at each width goes to ``_build/reports/browser/<width>px/`` for a human to look at,
with a ``.scrolls.txt`` beside it listing the boxes that scroll sideways there.

Run by ``make test`` after the HTML build (``make browser``).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from companion import chapters, pipeline

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # or a downloaded copy
SHOTS = ROOT / "_build" / "reports" / "browser"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` as its path in the built site (``book/x/y.html``)."""
    return [f"{f}.html" for f in chapters.toc()]


PAGES = toc_pages()
WIDTHS = (1280, 390)  # a laptop's window and a phone's (CSS px)
HEIGHT = 1000


def serve(directory: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve ``directory`` on a free localhost port; return its base URL and the server."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


@pytest.fixture(scope="session")
def site() -> str:
    """Base URL of ``_build/html`` served on localhost."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"{HTML} has no index.html: build the book first (make html)")
    url, server = serve(HTML)
    yield url
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what matters
        pass


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium with every non-local request refused and all requests logged."""
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver are needed: run scripts/get-browser.sh (as root)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--proxy-server=http://127.0.0.1:9",  # network off: loopback bypasses the proxy
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    """URLs the page requested since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _viewport(driver, width: int, height: int = HEIGHT) -> None:
    """Lay pages out at ``width`` CSS px (below 600: as a phone does, honouring the viewport meta)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def _screenshot(driver, page: str, shots: Path, width: int) -> Path:
    """A full-page PNG of the current page (at most 16000 px tall) at ``width``."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    _viewport(driver, width, min(height, 16000))
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        _viewport(driver, width)
    path = shots / f"{width}px" / (page.removesuffix(".html").replace("/", "__") + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done("none"); }
else { MathJax.startup.promise.then(() => done("typeset"), (e) => done("failed: " + e)); }
"""

PAGE_FACTS = """
const main = document.querySelector("main") || document.body;
const text = main.cloneNode(true);
text.querySelectorAll("pre, code, script, style, mjx-container, .MathJax").forEach(e => e.remove());
const outputs = [...main.querySelectorAll(".cell_output, .output")].map(e => e.innerText);
return {
  h1: (main.querySelector("h1") || {}).innerText || "",
  images: [...main.querySelectorAll("img")].map(i => ({src: i.currentSrc || i.src,
           ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
  text: text.innerText,
  mathSource: main.querySelectorAll(".math").length,
  typeset: main.querySelectorAll("mjx-container").length,
  mathErrors: main.querySelectorAll("mjx-merror").length,
  mathjaxSrc: [...document.scripts].map(s => s.src).filter(s => /mathjax/i.test(s)),
  outputs: outputs,
  visible: main.innerText,
  launch: [...document.querySelectorAll("a")].map(a => a.href).filter(h => /colab\\.research/.test(h)),
  links: [...document.querySelectorAll("a")].map(a => a.href),
};
"""

# What the reader cannot see all of: an element that sticks out of the page's column, or
# whose content spills out of it (overflow visible) or is cut off (overflow hidden or clip),
# unless it is inside a box that scrolls (overflow-x auto or scroll; that box is itself
# checked). One line per offender: the outermost one that sticks out, the innermost one whose
# content spills or is cut. The page itself must not scroll sideways either.
OVERFLOW = """
const col = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
const edge = col.getBoundingClientRect();
const scrolls = e => ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
  [...e.classList].slice(0, 3).map(c => "." + c).join("");
const text = e => (e.innerText || e.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 70);
const out = [], spill = [];
for (const e of col.querySelectorAll("*")) {
  if (out.some(f => f.node.contains(e))) continue;
  // MathJax's copy for screen readers and visually hidden text are clipped on purpose
  if (e.closest("mjx-assistive-mml, .visually-hidden, .sr-only, script, style")) continue;
  // math is one box: its glyphs overhang MathJax's own boxes by design, so only where a
  // formula's box lies counts, not its parts
  const math = e.closest("span.math, div.math");
  if (math && e !== math && e.tagName !== "MJX-CONTAINER") continue;
  const r = e.getBoundingClientRect(), st = getComputedStyle(e);
  if ((r.width === 0 && r.height === 0) || st.visibility === "hidden" || st.position === "fixed") continue;
  let a = e.parentElement, inside = false;
  while (a && a !== col && !inside) { inside = scrolls(a); a = a.parentElement; }
  if (inside) continue;
  if (r.right > edge.right + 1 || r.left < edge.left - 1) {
    out.push({node: e, line: `${name(e)} is ${Math.round(r.width)} px wide at x=${Math.round(r.left)}, ` +
              `the column ${Math.round(edge.left)}..${Math.round(edge.right)}: ${JSON.stringify(text(e))}`});
  } else if (!math && !scrolls(e) && e.scrollWidth > e.clientWidth + 1) {
    const how = st.overflowX === "visible" ? "spills out of" : `is cut off (overflow-x ${st.overflowX}) by`;
    spill.push({node: e, line: `the content of ${name(e)} (${e.scrollWidth} px) ${how} its ` +
                `${e.clientWidth} px: ${JSON.stringify(text(e))}`});
  }
}
const innermost = spill.filter(f => !spill.some(g => g !== f && f.node.contains(g.node)));
const lines = [...out, ...innermost.filter(f => !out.some(g => g.node.contains(f.node)))].map(f => f.line);
const page = document.documentElement.scrollWidth;
if (page > window.innerWidth + 1) {
  lines.unshift(`the page scrolls sideways (${page} px in ${window.innerWidth} px)`);
}
// no problem, but worth a look: the boxes a reader has to scroll sideways
const scrolling = [...col.querySelectorAll("*")].filter(e => scrolls(e) && e.scrollWidth > e.clientWidth + 1)
  .map(e => `${name(e)} scrolls (${e.scrollWidth} px in ${e.clientWidth} px): ${JSON.stringify(text(e))}`);
return {problems: lines, scrolling: scrolling};
"""

BOOK_CSS = "return [...document.styleSheets].some(s => /\\/_static\\/book\\.css/.test(s.href || ''))"

# Build debris a reader must not see: test and formatter markers in code, progress bars in
# outputs, and a phrase that leaked from the project's issue into a chapter.
DEBRIS = {
    "nbval marker": re.compile(r"NBVAL_CHECK_OUTPUT"),
    "ruff marker": re.compile(r"fmt: skip"),
    "progress bar": re.compile(r"\d+%\|[█▏▎▍▌▋▊▉ ]*\|"),
    "issue's wording": re.compile(r"issue[’']s targets"),
}

# a traceback, or an exception or warning line as Python prints it ("…/x.py:3: RuntimeWarning: …")
# a cell's last expression echoed by accident: "<matplotlib.legend.Legend at 0x7f…>"
STRAY_REPR = re.compile(r"<[\w.]+ (object )?at 0x[0-9a-f]+>")
ERROR_IN_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*(Error|Exception|Warning): ")


def page_problems(
    driver,
    site: str,
    page: str,
    *,
    chapter: bool = False,
    repository: str | None = None,
    width: int = WIDTHS[0],
    shots: Path = SHOTS,
) -> list[str]:
    """What a reader would find wrong with ``page`` at ``width``: one line per problem, empty
    when none. ``chapter``: an executed notebook, which has a Colab button exactly when the
    book has a ``repository``."""
    driver.get_log("performance")  # drop what earlier pages requested
    _viewport(driver, width)
    driver.get(urllib.parse.urljoin(site, page))
    math = driver.execute_async_script(WAIT_FOR_MATH)
    facts = driver.execute_script(PAGE_FACTS)
    overflow = driver.execute_script(OVERFLOW)
    shot = _screenshot(driver, page, shots, width)
    listing = shot.with_suffix(".scrolls.txt")  # beside the screenshot, for a human
    if overflow["scrolling"]:
        listing.write_text("\n".join(overflow["scrolling"]) + "\n")
    else:
        listing.unlink(missing_ok=True)
    problems = []
    h1 = facts["h1"].strip().rstrip("#").strip()
    if not h1 or h1 not in driver.title:
        problems.append(f"title: h1 {h1!r}, window title {driver.title!r}")
    problems += [f"image did not load: {i['src']}" for i in facts["images"] if not i["ok"]]
    if facts["mathSource"]:
        if math != "typeset":
            problems.append(f"math: {facts['mathSource']} math elements, MathJax {math}")
        elif facts["typeset"] < facts["mathSource"]:
            problems.append(f"math: {facts['mathSource'] - facts['typeset']} elements left untypeset")
        problems += [f"math: MathJax loaded from {s}" for s in facts["mathjaxSrc"] if not s.startswith(site)]
    if facts["mathErrors"]:
        problems.append(f"math: {facts['mathErrors']} MathJax errors (an unknown macro?)")
    problems += [f"raw TeX {raw!r} left in the text" for raw in ("$$", "\\(", "\\[", "\\begin{")
                 if raw in facts["text"]]  # fmt: skip
    problems += [f"output shows an error: {o[:200]!r}" for o in facts["outputs"] if ERROR_IN_OUTPUT.search(o)]
    problems += [f"output shows a stray object repr: {m.group(0)}" for o in facts["outputs"]
                 for m in [STRAY_REPR.search(o)] if m]  # fmt: skip
    problems += [f"shows build debris ({what}): {m.group(0)!r}" for what, rx in DEBRIS.items()
                 for m in [rx.search(facts["visible"])] if m]  # fmt: skip
    problems += [f"at {width} px: {line}" for line in overflow["problems"]]
    outside = [u for u in _requests(driver) if not u.startswith((site, "data:", "blob:", "about:"))]
    problems += [f"request leaves the book (fails offline): {u}" for u in outside]
    if chapter and repository and not facts["launch"]:
        problems.append("executed chapter without a Colab launch button")
    if repository:
        slug = repository.removeprefix("https://github.com/")
        problems += [f"Colab button opens another repository: {u}" for u in facts["launch"] if slug not in u]
    else:
        problems += [f"Colab button in a book without a repository: {u}" for u in facts["launch"]]
    problems += [f"link to a placeholder repository: {u}" for u in facts["links"]
                 if u.rstrip("/") in pipeline.PLACEHOLDERS]  # fmt: skip
    return problems


@pytest.fixture(scope="session")
def repository() -> str | None:
    """The repository the book is built with (the build and this test resolve it alike)."""
    return pipeline.repository()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(site: str, browser, repository: str | None, page: str, width: int) -> None:
    chapter = page.startswith("book/") and (ROOT / page).with_suffix(".ipynb").is_file()
    problems = page_problems(browser, site, page, chapter=chapter, repository=repository, width=width)
    # the book's own styles (_static/book.css) are what keep wide content in scrolling boxes
    if not browser.execute_script(BOOK_CSS):
        problems.append("the book's stylesheet _static/book.css is not loaded")
    assert not problems, f"{page} at {width} px:\n" + "\n".join(problems)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and (tag in ("a", "img", "script") or (tag == "link" and key == "href")):
                self.hrefs.append(a[key])


@functools.cache
def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
            return r.status, body.decode("utf-8", "replace") if url.endswith((".html", "/")) else ""
    except urllib.error.HTTPError as err:
        return err.code, ""


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def link_problems(site: str, pages: list[str]) -> tuple[list[str], int]:
    """Internal links, images and scripts of ``pages`` that do not resolve (or whose #anchor
    does not exist), and how many references were checked."""
    broken, checked = [], 0
    for page in pages:
        base = urllib.parse.urljoin(site, page)
        status, html = _fetch(base)
        if status != 200:
            broken.append(f"{page}: HTTP {status}")
            continue
        for href in _parse(html).hrefs:
            target = urllib.parse.urljoin(base, href)
            if not target.startswith(site):
                continue  # outside the book: launch buttons, the repository, DOIs
            path, _, frag = target.partition("#")
            status, body = _fetch(path)
            checked += 1
            if status != 200:
                broken.append(f"{page}: {href} → HTTP {status}")
            elif frag and path.endswith(".html") and urllib.parse.unquote(frag) not in _parse(body).ids:
                broken.append(f"{page}: {href} → no #{frag} there")
    return sorted(set(broken)), checked


def test_internal_links_resolve(site: str) -> None:
    """Every link, image and script a toc page references inside the book exists, and so
    does every #anchor it points at."""
    broken, checked = link_problems(site, PAGES)
    assert checked > len(PAGES), "no internal links found"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


DEFECTS = {  # a page per defect the checks must catch, served like the book
    "cdn.html": '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
    '<main><h1>CDN</h1><p><span class="math">\\(x^2\\)</span></p></main>',
    "image.html": '<main><h1>Image</h1><img src="missing.png"></main>',
    "raw.html": "<main><h1>Raw</h1><p>an unrendered $$x$$</p></main>",
    "error.html": '<main><h1>Error</h1><div class="cell_output"><pre>Traceback (most recent call last):\n'
    "ValueError: boom</pre></div></main>",
    "warning.html": '<main><h1>Warning</h1><div class="cell_output"><pre>/x/scale.py:3: RuntimeWarning: '
    "overflow encountered in exp</pre></div></main>",
    "repr.html": '<main><h1>Repr</h1><div class="cell_output"><pre>'
    "&lt;matplotlib.legend.Legend at 0x7f22e7122790&gt;</pre></div></main>",
    "link.html": '<main><h1>Links</h1><a href="image.html#nowhere">a</a><a href="gone.html">b</a></main>',
    "fine.html": '<main><h1>Fine</h1><a href="link.html">ok</a></main>',
    "debris.html": "<main><h1>Debris</h1><pre># NBVAL_CHECK_OUTPUT\nx = [1, 2]  # fmt: skip</pre>"
    '<div class="cell_output"><pre>seed 0: 100%|██████████| 54100/54100 [00:12&lt;00:00]</pre></div>'
    "<p>the issue's targets</p></main>",
    "wide.html": '<main style="width: 300px"><h1>Wide</h1><pre style="white-space: pre">'
    + "w" * 200
    + "</pre></main>",
    "clipped.html": '<main style="width: 300px"><h1>Clipped</h1><div style="overflow: hidden">'
    '<span style="white-space: nowrap">' + "c" * 200 + "</span></div></main>",
    "scrolls.html": '<main style="width: 300px"><h1>Scrolls</h1><div style="overflow-x: auto">'
    '<pre style="white-space: pre">' + "s" * 200 + "</pre></div></main>",
}


def test_checks_catch_each_defect(browser, tmp_path: Path) -> None:
    """The checks above fail on pages that have the defects they look for, and pass a clean
    page: a CDN MathJax (blocked, so math stays raw), a missing image, raw TeX, a traceback
    in an output, a link to a missing page or anchor, a chapter without a launch button (or
    with one and no repository), markers and a progress bar on the page, a line wider than
    the column, a box that cuts its content off; and a wide line in a box that scrolls (on
    purpose) at either width is no problem."""
    for name, body in DEFECTS.items():
        title = re.search(r"<h1>(.*?)</h1>", body).group(1)
        head = f'<head><meta charset="utf-8"><title>{title}</title></head>'
        (tmp_path / name).write_text(f"<!doctype html><html>{head}<body>{body}</body></html>")
    url, server = serve(tmp_path)
    try:
        found = {name: page_problems(browser, url, name, shots=tmp_path) for name in DEFECTS}
        links, _ = link_problems(url, list(DEFECTS))
        repo = "https://github.com/o/r"
        launch = page_problems(browser, url, "fine.html", chapter=True, repository=repo, shots=tmp_path)
        phone = page_problems(browser, url, "scrolls.html", width=WIDTHS[-1], shots=tmp_path)
        (tmp_path / "colab.html").write_text(
            '<html><head><title>Colab</title></head><body><main><h1>Colab</h1><a href="https://'
            'colab.research.google.com/github/o/r/blob/main/x.ipynb">launch</a></main></body></html>'
        )
        unwanted = page_problems(browser, url, "colab.html", chapter=True, shots=tmp_path)
        wanted = page_problems(browser, url, "colab.html", chapter=True, repository=repo, shots=tmp_path)
    finally:
        server.shutdown()
    assert any("MathJax none" in p for p in found["cdn.html"]), found["cdn.html"]
    assert any("leaves the book" in p and "cdn.jsdelivr" in p for p in found["cdn.html"]), found["cdn.html"]
    assert any("image did not load" in p for p in found["image.html"]), found["image.html"]
    assert any("raw TeX '$$'" in p for p in found["raw.html"]), found["raw.html"]
    assert any("output shows an error" in p for p in found["error.html"]), found["error.html"]
    assert any("RuntimeWarning" in p for p in found["warning.html"]), found["warning.html"]
    assert any("stray object repr" in p for p in found["repr.html"]), found["repr.html"]
    assert found["fine.html"] == [] and found["link.html"] == []
    assert any("gone.html → HTTP 404" in p for p in links), links
    assert any("no #nowhere there" in p for p in links), links
    assert any("missing.png → HTTP 404" in p for p in links), links
    assert launch == ["executed chapter without a Colab launch button"]
    assert wanted == [] and len(unwanted) == 1 and "without a repository" in unwanted[0], unwanted
    debris = found["debris.html"]
    for what in DEBRIS:
        assert any(f"build debris ({what})" in p for p in debris), (what, debris)
    assert any("content of pre (" in p and "spills out" in p for p in found["wide.html"]), found["wide.html"]
    assert any("page scrolls sideways" in p for p in found["wide.html"]), found["wide.html"]
    assert any("content of div" in p and "cut off" in p for p in found["clipped.html"]), found["clipped.html"]
    assert found["scrolls.html"] == [] and phone == [], (found["scrolls.html"], phone)
