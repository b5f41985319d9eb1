"""The gallery at scale: a 2,000-pair report fabricated from a real one (benchmarks/bench_render.py),
rendered, and used in a real browser from file://: cards in page files loaded on demand, search,
sort, the hit/miss filter, the URL hash, and a hostile caption shown as text."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.render import site as site_mod
from groundreport.render.site import CARDS_PER_FILE, PAGE_SIZE, render
from conftest import scene_grounding_lines
from test_site_browser import EVIL, browser  # noqa: F401  (the browser fixture, its skip rule)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_render import fabricate  # noqa: E402

N = 2000
UNICORN = 1700   # a caption found only by search: on card file 6, gallery page 36
HOSTILE = 1234
METHOD = "gradcam"


def _edit(i: int, entry: dict) -> None:
    """Known scores (distinct, some negative), a known mix of Grad-CAM hits and misses, two captions."""
    entry["score"] = round(0.6 * math.sin(i), 5)
    for j, ph in enumerate(entry["phrases"]):
        if METHOD in ph.get("scores", {}):
            ph["scores"][METHOD]["pointing"] = (i * 7 + j) % 3 > 0
    if i == UNICORN:
        entry["caption"] = "a unicorn beside a zebra"
    if i == HOSTILE:
        entry["caption"] = EVIL


@pytest.fixture(scope="module")
def source(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale_src")
    lines = scene_grounding_lines(root, 4)
    (root / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = CliRunner().invoke(app, ["build", "--captions", str(root / "d.jsonl"), "--model", str(tiny_model_dir),
                                   "--report", str(root / "report"), "--site", str(root / "site"), "--no-progress"])
    assert res.exit_code == 0, res.output
    return root / "report"


@pytest.fixture(scope="module")
def big(source, tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    manifest = fabricate(source, root / "report", N, edit=_edit)
    assert METHOD in manifest["pairs"][0]["phrases"][0]["scores"]
    info = render(root / "report", root / "site")
    return root / "site", manifest, info


def _pointing(entry):
    s = [ph["scores"][METHOD]["pointing"] for ph in entry["phrases"] if METHOD in ph.get("scores", {})]
    return sum(s), len(s)


def test_index_is_small_and_cards_are_in_page_files(big, source, tmp_path):
    site, manifest, info = big
    assert info["pairs"] == N and info["workers"] >= 1
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "unicorn" not in index and manifest["pairs"][5]["id"] not in index  # no card inlined
    # the index does not grow with the pairs: 200 pairs give the same bytes, give or take digits
    fabricate(source, tmp_path / "report", 200)
    small = render(tmp_path / "report", tmp_path / "site")
    assert abs(info["index_bytes"] - small["index_bytes"]) < 64 and info["index_bytes"] < 100_000
    files = sorted((site / "data").glob("cards-*.js"))
    assert [f.name for f in files] == [f"cards-{k:04d}.js" for k in range(math.ceil(N / CARDS_PER_FILE))]
    text = files[UNICORN // CARDS_PER_FILE].read_text(encoding="utf-8")
    assert text.startswith(f"window.GR_PAGE({UNICORN // CARDS_PER_FILE},") and manifest["pairs"][UNICORN]["id"] in text
    assert max(f.stat().st_size for f in files) < 200_000
    # every pair has its page, every card's images are there
    assert len(list((site / "pairs").glob("*.html"))) == N
    search = (site / "data" / "search.js").read_text(encoding="utf-8")
    assert "<script>" not in search and "\\u003cscript\\u003e" in search  # the data files escape markup too


def test_pool_and_one_process_write_the_same_site(source, tmp_path, monkeypatch):
    fabricate(source, tmp_path / "report", 120)
    monkeypatch.setattr(site_mod, "PAIRS_PER_TASK", 25)
    monkeypatch.setattr(site_mod, "_workers", lambda n: 2)
    assert render(tmp_path / "report", tmp_path / "pool")["workers"] == 2
    monkeypatch.setattr(site_mod, "_workers", lambda n: 1)
    render(tmp_path / "report", tmp_path / "one")
    a = {p.relative_to(tmp_path / "pool"): p for p in (tmp_path / "pool").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "one"): p for p in (tmp_path / "one").rglob("*") if p.is_file()}
    assert a.keys() == b.keys() and len(a) > 120
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a if k.suffix != ".svg")
    # rendered again over a large old site: the new one is in place at once, the old one is
    # removed by a detached process
    monkeypatch.setattr(site_mod, "BIG_SITE", 100)
    (tmp_path / "one" / "marker").write_text("old")
    render(tmp_path / "report", tmp_path / "one")
    assert not (tmp_path / "one" / "marker").exists() and len(list((tmp_path / "one" / "pairs").iterdir())) == 120
    for _ in range(600):
        if not list(tmp_path.glob(".one.old*")):
            break
        time.sleep(0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "pool", "report"]  # no .one.old* left


def test_read_maps_equals_np_load(tmp_path):
    """report.read_maps parses np.savez's zips itself (for speed): the same arrays as np.load,
    and zips it does not parse (bzip2 here) still read through the zipfile module."""
    import io
    import zipfile

    import numpy as np

    from groundreport.report import read_maps

    rng = np.random.default_rng(0)
    arrays = {"gradcam/caption": rng.random((14, 14)).astype(np.float16),
              "mm-attention/heads": rng.random((2, 3, 14, 14)).astype(np.float16),
              "x/scalar": np.float32(3.5), "x/fortran": np.asfortranarray(rng.random((3, 4)))}
    for save in (np.savez_compressed, np.savez):
        save(tmp_path / "m.npz", **arrays)
        got = read_maps(tmp_path, {"maps": {"file": "m.npz"}})
        assert got.keys() == arrays.keys()
        for k, a in arrays.items():
            assert got[k].dtype == a.dtype and got[k].shape == a.shape and np.array_equal(got[k], a), k
    with zipfile.ZipFile(tmp_path / "b.npz", "w", zipfile.ZIP_BZIP2) as zf:
        buf = io.BytesIO()
        np.save(buf, arrays["gradcam/caption"])
        zf.writestr("gradcam/caption.npy", buf.getvalue())
    assert np.array_equal(read_maps(tmp_path, {"maps": {"file": "b.npz"}})["gradcam/caption"], arrays["gradcam/caption"])


def _open(browser, site, hash_=""):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    ev = {"errors": [], "scripts": [], "external": [], "dialogs": []}
    page.on("console", lambda m: ev["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: ev["errors"].append(str(e)))
    page.on("dialog", lambda d: (ev["dialogs"].append(d.message), d.dismiss()))

    def request(r):
        if not r.url.startswith(("file://", "data:")):
            ev["external"].append(r.url)
        elif "/data/" in r.url:
            ev["scripts"].append(unquote(r.url).rsplit("/", 1)[1])
    page.on("request", request)
    page.goto((site / "index.html").as_uri() + hash_)
    page.wait_for_selector("#grid[data-shown]")
    return page, ev


def _ids(page):
    return [h.split("/")[-1][:-5] for h in page.locator(".card a").evaluate_all("els => els.map(e => e.getAttribute('href'))")]


def _wait(page, shown):
    page.wait_for_function("s => document.getElementById('grid').dataset.shown === s && !document.getElementById('grid').hasAttribute('aria-busy')", arg=shown)


def test_pages_load_their_cards_on_demand(browser, big):
    site, manifest, _ = big
    ids = [p["id"] for p in manifest["pairs"]]
    page, ev = _open(browser, site)
    assert _ids(page) == ids[:PAGE_SIZE]
    assert page.inner_text("#count") == f"1\u2013{PAGE_SIZE} of 2,000 pairs"
    assert sorted(ev["scripts"]) == ["cards-0000.js", "search.js"]  # nothing else yet
    page.locator(".pages .next").first.click()
    _wait(page, f"2:{N}")
    assert _ids(page) == ids[PAGE_SIZE:2 * PAGE_SIZE] and page.url.endswith("#page=2")
    assert sorted(ev["scripts"]) == ["cards-0000.js", "search.js"]
    page.fill(".pages .page", "6")  # cards 240-287: the rest of file 0 and the start of file 1
    page.dispatch_event(".pages .page", "change")
    _wait(page, f"6:{N}")
    assert _ids(page) == ids[5 * PAGE_SIZE:6 * PAGE_SIZE]
    assert sorted(ev["scripts"]) == ["cards-0000.js", "cards-0001.js", "search.js"]
    card = page.locator(".card").nth(10)  # pair 250: a card built from cards-0001.js
    assert card.locator(".cap").inner_text() == manifest["pairs"][250]["caption"]
    assert card.locator("img").get_attribute("src").startswith("media/")
    assert ev["errors"] == [] and ev["external"] == [] and ev["dialogs"] == []


def test_search_finds_a_caption_on_a_later_page(browser, big):
    site, manifest, _ = big
    page, ev = _open(browser, site)
    page.fill("#filter", "UNICORN")
    _wait(page, "1:1")
    assert _ids(page) == [manifest["pairs"][UNICORN]["id"]]
    assert page.locator(".card .cap").inner_text() == "a unicorn beside a zebra"
    assert f"cards-{UNICORN // CARDS_PER_FILE:04d}.js" in ev["scripts"]
    assert page.inner_text("#count") == "1\u20131 of 1 matching (of 2,000)"
    page.fill("#filter", "zebra unicorn")  # every word, in any order
    _wait(page, "1:1")
    page.fill("#filter", "unicorn dragon")
    _wait(page, "1:0")
    assert page.locator(".card").count() == 0 and "no pair matches" in page.inner_text("#count")
    # a word in many captions: as many cards as captions hold it
    word = manifest["pairs"][0]["caption"].split()[1]
    page.fill("#filter", word)
    want = sum(word in p["caption"].lower() for p in manifest["pairs"])
    _wait(page, f"1:{want}")
    assert ev["errors"] == []


def test_sort_by_score_and_by_hits(browser, big):
    site, manifest, _ = big
    pairs = manifest["pairs"]
    page, ev = _open(browser, site)
    page.select_option("#sort", "score-desc")
    _wait(page, f"1:{N}")
    by_score = sorted(range(N), key=lambda i: (-pairs[i]["score"], i))
    assert _ids(page) == [pairs[i]["id"] for i in by_score[:PAGE_SIZE]]
    page.select_option("#sort", "score-asc")
    _wait(page, f"1:{N}")
    assert _ids(page) == [pairs[i]["id"] for i in sorted(range(N), key=lambda i: (pairs[i]["score"], i))[:PAGE_SIZE]]
    assert page.locator(".card").first.locator(".flag").inner_text() == "negative"
    page.select_option("#hitmethod", METHOD)
    page.select_option("#sort", "hits-desc")
    _wait(page, f"1:{N}")

    def frac(i):
        h, k = _pointing(pairs[i])
        return h / k if k else -1
    want = sorted(range(N), key=lambda i: (frac(i) < 0, -frac(i), -pairs[i]["score"], i))
    assert _ids(page) == [pairs[i]["id"] for i in want[:PAGE_SIZE]]
    h, k = _pointing(pairs[want[0]])
    assert page.locator(".card .hits").first.inner_text() == f"{h}/{k} phrases hit"
    page.select_option("#sort", "hits-asc")
    _wait(page, f"1:{N}")
    want = sorted(range(N), key=lambda i: (frac(i) < 0, frac(i), pairs[i]["score"], i))
    assert _ids(page) == [pairs[i]["id"] for i in want[:PAGE_SIZE]]
    assert ev["errors"] == []


def test_hit_and_miss_filters_and_the_hash(browser, big):
    site, manifest, _ = big
    pairs = manifest["pairs"]
    hits = [i for i in range(N) if _pointing(pairs[i])[1] and _pointing(pairs[i])[0] == _pointing(pairs[i])[1]]
    misses = [i for i in range(N) if _pointing(pairs[i])[0] < _pointing(pairs[i])[1]]
    assert hits and misses and len(hits) + len(misses) == N
    page, ev = _open(browser, site)
    default = page.eval_on_selector("#hitmethod", "e => e.value")  # the hash leaves out the default method
    page.select_option("#hitmethod", METHOD)
    page.select_option("#hitfilter", "hit")
    _wait(page, f"1:{len(hits)}")
    assert _ids(page) == [pairs[i]["id"] for i in hits[:PAGE_SIZE]]
    assert page.locator(".card .hits.hit").count() == PAGE_SIZE and page.locator(".card .hits.miss").count() == 0
    page.select_option("#hitfilter", "miss")
    _wait(page, f"1:{len(misses)}")
    assert _ids(page) == [pairs[i]["id"] for i in misses[:PAGE_SIZE]]
    assert page.locator(".card .hits.miss").count() == PAGE_SIZE
    page.select_option("#sort", "score-desc")
    page.fill("#filter", "a")
    page.locator(".pages .next").last.click()
    expect = [i for i in sorted(misses, key=lambda i: (-pairs[i]["score"], i)) if "a" in pairs[i]["caption"].lower()]
    _wait(page, f"2:{len(expect)}")
    page.uncheck("#maps")
    state = page.url.split("#", 1)[1]
    assert set(state.split("&")) == {"q=a", "sort=score-desc", "filter=miss", "page=2", "maps=0"} | (
        {f"method={METHOD}"} if METHOD != default else set())
    shown = _ids(page)
    assert shown == [pairs[i]["id"] for i in expect[PAGE_SIZE:2 * PAGE_SIZE]]
    # the hash alone brings the same view back
    again, ev2 = _open(browser, site, "#" + state)
    assert _ids(again) == shown
    assert again.input_value("#filter") == "a" and again.input_value("#hitfilter") == "miss"
    assert again.input_value("#sort") == "score-desc" and not again.is_checked("#maps")
    assert again.locator(".card img").first.get_attribute("src").endswith("_thumb.webp")
    assert ev["errors"] == [] and ev2["errors"] == []


def test_a_hostile_caption_is_text(browser, big):
    site, manifest, _ = big
    page, ev = _open(browser, site, "#q=script")
    _wait(page, "1:1")
    assert page.locator(".card .cap").inner_text() == EVIL
    assert page.locator(".card script, .card img[src=x]").count() == 0
    scripts = page.locator("script").evaluate_all("els => els.map(e => e.getAttribute('src'))")
    assert sorted(scripts) == ["assets/index.js", "data/cards-0000.js", f"data/cards-{HOSTILE // CARDS_PER_FILE:04d}.js",
                               "data/search.js"]
    assert ev["dialogs"] == [] and ev["errors"] == []
