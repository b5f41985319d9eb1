"""The gallery in a real browser (Debian's chromium via playwright), opened from file://."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from groundreport.cli import app
from conftest import write_scene_images

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EVIL = 'a red star <script>alert("x")</script> and <img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def site(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    scenes = write_scene_images(root / "imgs", 4, "png")
    lines = [{"image": f"imgs/img{i}.png", "caption": s.caption,
              "phrases": [{"text": o.phrase, "boxes": [list(o.box)]} for o in s.objects]} for i, s in enumerate(scenes)]
    lines.append({"image": "imgs/img0.png", "caption": EVIL})
    (root / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = CliRunner().invoke(app, ["build", "--captions", str(root / "d.jsonl"), "--model", str(tiny_model_dir),
                                   "--report", str(root / "report"), "--site", str(root / "site"),
                                   "--captions-per-image", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    return root / "site"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.refs.append(v)


def test_every_link_is_relative_and_resolves(site):
    pages = [site / "index.html", *sorted((site / "pairs").glob("*.html"))]
    assert len(pages) == 6
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.refs
        for ref in parser.refs:
            u = urlparse(ref)
            assert not u.scheme and not u.netloc and not ref.startswith("/"), f"{page.name}: {ref}"
            target = (page.parent / unquote(u.path)).resolve()
            assert target.is_file(), f"{page.name}: {ref} -> missing {target}"


def test_captions_are_escaped(site):
    pages = [site / "index.html", *(site / "pairs").glob("*.html")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert" in text
    # only our own scripts: index.js on the index; the inline JSON data and pair.js on a pair page
    assert len(re.findall(r"<script\b", (site / "index.html").read_text())) == 1
    for p in (site / "pairs").glob("*.html"):
        assert len(re.findall(r"<script\b", p.read_text())) == 2


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} missing (apt-get install chromium)")
    sync = pytest.importorskip("playwright.sync_api", reason="BROWSER TESTS SKIPPED: pip install playwright").sync_playwright
    with sync() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, url):
    page = browser.new_page()
    events = {"errors": [], "failed": [], "external": [], "dialogs": []}
    page.on("console", lambda m: events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("requestfailed", lambda r: events["failed"].append(r.url))
    page.on("request", lambda r: events["external"].append(r.url) if not r.url.startswith(("file://", "data:")) else None)
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, events


def test_index_filter_and_no_outside_requests(browser, site):
    page, ev = _open(browser, (site / "index.html").as_uri())
    assert page.locator(".card:visible").count() == 5
    page.fill("#filter", "script")
    assert page.locator(".card:visible").count() == 1
    page.fill("#filter", "zzzz-no-such-caption")
    assert page.locator(".card:visible").count() == 0
    page.fill("#filter", "")
    page.select_option("#sort", "score-desc")
    scores = [float(x) for x in page.locator(".card").evaluate_all("els => els.map(e => e.dataset.score)")]
    assert scores == sorted(scores, reverse=True)
    assert ev == {"errors": [], "failed": [], "external": [], "dialogs": []}


def test_pair_page_word_chip_changes_the_map(browser, site):
    index, _ = _open(browser, (site / "index.html").as_uri())
    href = index.locator(".card a").first.get_attribute("href")
    page, ev = _open(browser, (site / href).as_uri())
    page.check('#methods input[value="mm-relevancy"]')
    before = page.eval_on_selector("#heat", "c => c.toDataURL()")
    page.locator('.chip[data-kind="words"]').nth(1).click()
    after = page.eval_on_selector("#heat", "c => c.toDataURL()")
    assert before != after
    assert "word" in page.inner_text("#showing")
    page.locator(".thumb").first.click()
    assert page.locator("#head-row canvas").count() >= 2
    with page.expect_navigation():
        page.keyboard.press("ArrowRight")
    assert page.url != (site / href).as_uri()
    assert ev["errors"] == [] and ev["failed"] == [] and ev["external"] == [] and ev["dialogs"] == []


def test_hostile_caption_is_not_executed(browser, site):
    index, _ = _open(browser, (site / "index.html").as_uri())
    card = index.locator(".card", has_text="script").first
    page, ev = _open(browser, (site / card.locator("a").get_attribute("href")).as_uri())
    assert ev["dialogs"] == [] and ev["errors"] == []
    assert "<script>" in page.inner_text(".tokens") or "script" in page.inner_text("#words")
