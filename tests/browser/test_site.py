"""The built book in a real browser, the way a reader uses it, with the network off.

Serves ``_build/html`` on localhost and drives Debian's headless Chromium through its
chromedriver (``scripts/get-browser.sh``; nothing is downloaded). Every request that leaves
localhost is refused (a dead proxy and a resolver that resolves nothing), and every request
the page makes is logged, so a CDN dependency fails the test rather than going unnoticed.

For every page in ``_toc.yml``: it loads with its title; every image has loaded; math is
typeset by the book's own MathJax with no raw TeX and no MathJax error left; no output shows
a traceback or an error; every internal link (and its #anchor) resolves. A full-page
screenshot of each page goes to ``_build/reports/browser/`` for a human to look at.

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

from companion import chapters

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # or a downloaded copy
SHOTS = ROOT / "_build" / "reports" / "browser"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` as its path in the built site (``book/x/y.html``)."""
    return [f"{f}.html" for f in chapters.toc()]


PAGES = toc_pages()


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


def _screenshot(driver, page: str, shots: Path) -> Path:
    """A full-page PNG of the current page (at most 16000 px tall), at the window's width."""
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": width, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path = shots / (page.removesuffix(".html").replace("/", "__") + ".png")
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
  launch: [...document.querySelectorAll("a")].map(a => a.href).filter(h => /colab\\.research/.test(h)),
};
"""

# a traceback, or an exception or warning line as Python prints it ("…/x.py:3: RuntimeWarning: …")
# a cell's last expression echoed by accident: "<matplotlib.legend.Legend at 0x7f…>"
STRAY_REPR = re.compile(r"<[\w.]+ (object )?at 0x[0-9a-f]+>")
ERROR_IN_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*(Error|Exception|Warning): ")


def page_problems(driver, site: str, page: str, *, chapter: bool = False, shots: Path = SHOTS) -> list[str]:
    """What a reader would find wrong with ``page``: one line per problem, empty when none."""
    driver.get_log("performance")  # drop what earlier pages requested
    driver.get(urllib.parse.urljoin(site, page))
    math = driver.execute_async_script(WAIT_FOR_MATH)
    facts = driver.execute_script(PAGE_FACTS)
    _screenshot(driver, page, shots)
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
    outside = [u for u in _requests(driver) if not u.startswith((site, "data:", "blob:", "about:"))]
    problems += [f"request leaves the book (fails offline): {u}" for u in outside]
    if chapter and not facts["launch"]:
        problems.append("executed chapter without a Colab launch button")
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_offline(site: str, browser, page: str) -> None:
    chapter = page.startswith("book/") and (ROOT / page).with_suffix(".ipynb").is_file()
    problems = page_problems(browser, site, page, chapter=chapter)
    assert not problems, f"{page}:\n" + "\n".join(problems)


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
}


def test_checks_catch_each_defect(browser, tmp_path: Path) -> None:
    """The checks above fail on pages that have the defects they look for, and pass a clean
    page: a CDN MathJax (blocked, so math stays raw), a missing image, raw TeX, a traceback
    in an output, a link to a missing page or anchor, a chapter without a launch button."""
    for name, body in DEFECTS.items():
        title = re.search(r"<h1>(.*?)</h1>", body).group(1)
        (tmp_path / name).write_text(f"<!doctype html><html><head><title>{title}</title></head>"
                                     f"<body>{body}</body></html>")  # fmt: skip
    url, server = serve(tmp_path)
    try:
        found = {name: page_problems(browser, url, name, shots=tmp_path) for name in DEFECTS}
        links, _ = link_problems(url, list(DEFECTS))
        launch = page_problems(browser, url, "fine.html", chapter=True, shots=tmp_path)
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
