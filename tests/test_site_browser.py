"""The gallery in a real browser (Debian's chromium via playwright), opened from file://."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.render.site import _b64, _quantize, match_words, model_siblings, render
from groundreport.report import read_maps
from conftest import scene_grounding_lines

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EVIL = 'a red star <script>alert("x")</script> and <img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def site(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    lines = scene_grounding_lines(root, 4)
    lines.append({"image": "imgs/img0.png", "caption": EVIL})
    for name, size in (("wide", (2000, 60)), ("tall", (60, 2000))):
        # a strip with a red square a third of the way along
        im = Image.new("RGB", size, (90, 90, 90))
        w, h = size
        box = [w // 3, h // 3, w // 3 + min(w, h) // 2, h // 3 + min(w, h) // 2]
        ImageDraw.Draw(im).rectangle(box, fill=(220, 30, 30))
        im.save(root / "imgs" / f"{name}.png")
        lines.append({"image": f"imgs/{name}.png", "caption": "a red square",
                      "phrases": [{"text": "a red square", "boxes": [box]}]})
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
    assert len(pages) == 8
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
    # a request the page cancelled by navigating away (a lazy thumbnail: net::ERR_ABORTED) is
    # not a missing file (net::ERR_FILE_NOT_FOUND): only the latter counts
    page.on("requestfailed", lambda r: events["failed"].append(r.url) if "ERR_ABORTED" not in (r.failure or "")
            else None)
    page.on("request", lambda r: events["external"].append(r.url) if not r.url.startswith(("file://", "data:")) else None)
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, events


def test_index_filter_and_no_outside_requests(browser, site):
    page, ev = _open(browser, (site / "index.html").as_uri())
    assert page.locator(".card:visible").count() == 7
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
    assert page.locator("#compare").count() == 0  # one model: no comparison panel
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


# --- choices the pair page makes, on a report with known method scores and hand-made marks

SCORES = {"gradcam": 0.9, "relevancy": 0.8, "mm-gradcam": 0.6, "mm-relevancy": 0.5, "mm-masked": 0.45, "mm-attention": 0.4,
          "attention": 0.99, "rollout": 0.3, "legrad": 0.1}  # attention ignores the caption: never first
WORD_SCORES = {"relevancy": 0.7, "mm-gradcam": 0.6, "gradcam": 0.2}  # words rank on their own table


@pytest.fixture(scope="module")
def crafted(site, tmp_path_factory):
    """The built report re-rendered with SCORES as the summary, and: the first pair with
    phrases has its Grad-CAM maps zeroed in maps.npz and marked flat, one unknown word, a
    warning and a negative score; the second has a flat Grad-CAM caption map."""
    root = tmp_path_factory.mktemp("crafted")
    report = root / "report"
    shutil.copytree(site.parent / "report", report)
    man = json.loads((report / "manifest.json").read_text())
    assert set(man["summary"]["methods"]) == set(SCORES)
    for name, score in SCORES.items():
        man["summary"]["methods"][name]["pointing"] = score
    for name, score in WORD_SCORES.items():
        man["summary"]["words"]["methods"][name]["pointing"] = score
    flat, flat_card = [p for p in man["pairs"] if p["phrases"]][:2]
    npz = report / flat["maps"]["file"]
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["gradcam/caption"][:] = 0
    arrays["gradcam/phrases"][:] = 0
    arrays["attention/layers"][0] = 0.5  # uniform attention in the first block, every head
    arrays["attention/heads"][0] = 0.5
    np.savez_compressed(npz, **arrays)
    flat["maps"]["flat"]["gradcam"].update(caption=True, phrases=[True] * len(flat["phrases"]))
    flat["words"][1]["unknown"] = True
    flat["warnings"] = ["most content words are unknown to the model's tokenizer"]
    flat["score"] = -0.59
    flat_card["maps"]["flat"]["gradcam"]["caption"] = True
    man["summary"]["flat"] = {"gradcam": 2}
    (report / "manifest.json").write_text(json.dumps(man))
    render(report, root / "site")
    return root / "site", man, flat, flat_card


def _shown(page):
    return page.locator("#methods input:checked").get_attribute("value"), page.inner_text("#showing")


def _heat(page, sel="#panel-heat canvas"):
    return page.eval_on_selector(sel, "c => c.toDataURL()")


def test_method_follows_the_selection_and_the_pick_persists(browser, crafted):
    site, man, flat, flat_card = crafted
    pairs = man["pairs"]
    start = next(i for i in range(len(pairs) - 1)
                 if all(p["phrases"] and p not in (flat, flat_card) for p in pairs[i:i + 2]))
    page, ev = _open(browser, (site / "pairs" / f"{man['pairs'][start]['id']}.html").as_uri())
    # opens on the best-scoring method; the caption-blind one (highest score) is never first
    m, text = _shown(page)
    assert m == "gradcam" and "showing Grad-CAM: the best-scoring method \u00b7 whole caption" in text
    caption_map = _heat(page)
    page.locator('.chip[data-kind="words"]').nth(1).click()
    m, text = _shown(page)
    assert m == "relevancy" and "the best-scoring method with word maps" in text
    # a content word of a boxed phrase: its own peak, against that phrase's box
    assert page.locator("#boxes circle.peak").count() == 1 and page.locator("#boxes rect.gt").count() == 1
    word_map = _heat(page)
    assert word_map != caption_map  # the panels follow the selection
    page.locator('.chip[data-kind="phrases"]').first.click()
    m, text = _shown(page)
    assert m == "gradcam" and "the best-scoring method with phrase maps" in text
    assert _heat(page) not in (caption_map, word_map)
    with page.expect_navigation():
        page.click("#next")
    assert _shown(page)[0] == "gradcam"

    # the reader's pick wins wherever it has a map, and travels with prev/next
    page.check('#methods input[value="rollout"]')
    m, text = _shown(page)
    assert m == "rollout" and "your choice" in text and page.url.endswith("#method=rollout")
    page.locator('.chip[data-kind="words"]').first.click()
    m, text = _shown(page)
    assert m == "relevancy" and "(Attention rollout has none)" in text
    assert page.locator('#methods input[value="rollout"]').is_disabled()
    page.locator('.chip[data-kind="phrases"]').first.click()
    assert _shown(page)[0] == "rollout"
    with page.expect_navigation():
        page.keyboard.press("ArrowLeft")
    m, text = _shown(page)
    assert m == "rollout" and "your choice" in text
    # from the gallery too (local storage), until the reader goes back to the best
    page.goto((site / "index.html").as_uri())
    with page.expect_navigation():
        page.locator(".card a").nth(start).click()
    assert _shown(page)[0] == "rollout"
    page.click("#auto")
    assert _shown(page)[0] == "gradcam" and "#method" not in page.url
    assert ev["errors"] == [] and ev["failed"] == [] and ev["external"] == []


def test_flat_map_unknown_word_and_warnings_are_said(browser, crafted):
    site, man, flat, flat_card = crafted
    page, ev = _open(browser, (site / "pairs" / f"{flat['id']}.html").as_uri())
    assert _shown(page)[0] == "gradcam"  # the best-scoring method, flat on this pair
    note = page.locator(".mapbox .flatnote")
    assert note.is_visible() and note.inner_text() == "flat: this method found no evidence here"
    assert page.locator("#heat").is_hidden() and page.locator("#panel-heat canvas").is_hidden()
    assert page.locator('#methods label:has(input[value="gradcam"]) .flathere').is_visible()
    row = page.locator('#phrase-table tr[data-method="gradcam"]')
    assert row.locator("td.flat").count() == len(flat["phrases"])
    assert "miss" not in row.inner_text() and "hit" not in row.inner_text()
    page.check('#methods input[value="relevancy"]')
    assert note.is_hidden() and page.locator("#heat").is_visible()
    unknown = page.locator(".chip.unknown[data-kind=words]")
    assert unknown.count() == 1 and unknown.get_attribute("title") == "unknown to the model's tokenizer"
    assert "most content words are unknown" in page.inner_text("#warnings")
    assert page.locator("#score + .flag").inner_text() == "negative"
    thumbs = page.locator(".thumb").filter(has=page.locator("canvas[aria-label^='Image encoder']"))
    assert thumbs.nth(0).inner_text() == "L1 flat" and thumbs.nth(1).inner_text() == "L2"  # a uniform layer says so
    thumbs.nth(0).click()
    assert page.locator("#head-row figcaption").first.inner_text() == "H1 flat"
    assert ev["errors"] == []

    index, ev = _open(browser, (site / "index.html").as_uri())
    cards = index.locator(".card")
    order = [p["id"] for p in man["pairs"]]
    for p in (flat, flat_card):
        card = cards.nth(order.index(p["id"]))
        assert card.locator(".badge.flat").is_visible()
        assert card.locator("img").get_attribute("src") == f"media/{p['thumb']}"
    assert cards.nth(order.index(flat["id"])).locator(".flag").inner_text() == "negative"
    other = next(p for p in man["pairs"] if p not in (flat, flat_card)
                 and not p["maps"].get("flat", {}).get("gradcam", {}).get("caption"))
    img = cards.nth(order.index(other["id"])).locator("img")
    assert img.get_attribute("src").endswith("gradcam_overlay.webp")
    index.uncheck("#maps")
    assert img.get_attribute("src") == f"media/{other['thumb']}"
    assert "Flat maps" in index.inner_text("table.methods")
    assert ev["errors"] == [] and ev["failed"] == []


def test_no_sideways_scroll_at_390px(browser, crafted):
    site, man, flat, _ = crafted
    wide = next(p for p in man["pairs"] if p["width"] == 2000)
    page = browser.new_page(viewport={"width": 390, "height": 800})
    for url in ("index.html", f"pairs/{flat['id']}.html", f"pairs/{wide['id']}.html"):
        page.goto((site / url).as_uri())
        page.locator('.chip[data-kind="phrases"]').first.click() if "pairs/" in url else None
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, url
    page.close()


@pytest.mark.parametrize("size", [(2000, 60), (60, 2000)])
def test_extreme_aspect_ratio_is_readable(browser, crafted, size):
    site, man, *_ = crafted
    pair = next(p for p in man["pairs"] if (p["width"], p["height"]) == size)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto((site / "pairs" / f"{pair['id']}.html").as_uri())
    stage = page.locator("#stage").bounding_box()
    assert min(stage["width"], stage["height"]) >= 119  # not a sliver
    assert abs(stage["width"] / stage["height"] - size[0] / size[1]) < 0.05 * size[0] / size[1]
    frame = page.locator(".frame.main").bounding_box()
    assert frame["width"] <= 600 and frame["height"] <= 0.75 * 900 + 1  # scrolls inside its frame
    assert page.locator(".view .hint").is_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280
    page.close()


# --- models side by side: one report of a tiny FLAVA and a tiny CLIP (conftest.tiny_clip)

def _entry(model, image, caption, caption_index=0, words=()):
    return {"model": model, "image": image, "caption": caption, "caption_index": caption_index,
            "words": [{"text": t, "span": list(sp)} for t, sp in words]}


def test_siblings_are_other_models_on_the_same_image_and_caption():
    pairs = [_entry("flava", "images/aaa.jpg", "a red star"),           # 0
             _entry("clip", "images/aaa.jpg", "a red star"),            # 1: 0's twin
             _entry("flava", "images/bbb.jpg", "a red star"),           # 2: another image
             _entry("clip", "images/aaa.jpg", "a blue star", 1),        # 3: another caption
             _entry("siglip", "images/aaa.jpg", "a red star"),          # 4
             _entry("siglip", "images/aaa.jpg", "a red star", 2),       # 5: sampled again, other index
             _entry("flava", "images/aaa.jpg", "a red star", 2)]        # 6
    sib = model_siblings(pairs)
    assert sib[0] == [1, 4]        # one per other model, in the models' order
    assert sib[1] == [0, 4]
    assert sib[6] == [1, 5]        # of a model's two pairs, the one of the same caption index
    assert sib[2] == [] and sib[3] == []
    assert model_siblings(pairs[:1]) == [[]]


# "the dog's red star, 42 jackets": BERT (FLAVA) and CLIP's BPE split it differently
FLAVA_WORDS = [("the", (0, 3)), ("dog", (4, 7)), ("'", (7, 8)), ("s", (8, 9)), ("red", (10, 13)),
               ("star", (14, 18)), (",", (18, 19)), ("42", (20, 22)), ("jackets", (23, 30))]
CLIP_WORDS = [("the", (0, 3)), ("dog", (4, 7)), ("'s", (7, 9)), ("red", (10, 13)), ("star", (14, 18)),
              (",", (18, 19)), ("4", (20, 21)), ("2", (21, 22)), ("jackets", (23, 30))]


def test_words_are_matched_by_span_not_index():
    flava = _entry("flava", "i", "the dog's red star, 42 jackets", words=FLAVA_WORDS)["words"]
    clip = _entry("clip", "i", "the dog's red star, 42 jackets", words=CLIP_WORDS)["words"]
    assert match_words(flava, clip) == [0, 1, None, None, 3, 4, 5, None, 8]
    assert match_words(clip, flava) == [0, 1, None, 4, 5, 6, None, None, 8]


@pytest.fixture(scope="module")
def compared(tiny_model_dir, tiny_clip_dir, tmp_path_factory):
    """One report, two models: the tiny FLAVA (no crop) and the tiny CLIP (centre crop, no
    multimodal encoder); one caption whose words the two tokenizers split differently (",," one
    word for CLIP, two for BERT; "42" two for CLIP), its phrase an object of the image (e.g.
    "green circle"). The digits come last: the tiny CLIP's vocabulary lacks them, so they become
    its unknown token, which is its end-of-text token, where CLIP pools the caption."""
    root = tmp_path_factory.mktemp("compare")
    lines = scene_grounding_lines(root, 2)
    thing = lines[0]["phrases"][0]
    dog = f"the dog,, {thing['text']} and jackets 42"
    lines.append({"image": "imgs/img0.png", "caption": dog, "phrases": [thing]})
    (root / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = CliRunner().invoke(app, ["build", "--captions", str(root / "d.jsonl"), "--model", str(tiny_model_dir),
                                   "--model", str(tiny_clip_dir), "--report", str(root / "report"),
                                   "--site", str(root / "site"), "--captions-per-image", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    man = json.loads((root / "report" / "manifest.json").read_text())
    return root, man, str(tiny_model_dir), str(tiny_clip_dir), dog


def _word_map(report, entry, method, span) -> tuple[int, str]:
    """(index, quantised base64) of ``entry``'s map of the word at ``span``, read from its maps.npz."""
    k = next(i for i, w in enumerate(entry["words"]) if w["span"] == list(span))
    arr = read_maps(report, entry)[entry["maps"]["keys"][method]["words"]][k]
    return k, _b64(_quantize(arr))


def _columns(page):
    return page.locator("#compare .col canvas").evaluate_all(
        "cs => cs.map(c => ({model: c.closest('.col').dataset.model, map: c.dataset.map, hidden: c.hidden, "
        "note: c.parentNode.querySelector('.colnote').hidden ? '' : c.parentNode.querySelector('.colnote').textContent, "
        "verdict: c.closest('.col').querySelector('.colverdict').textContent}))")


def test_models_side_by_side(browser, compared):
    root, man, flava_id, clip_id, dog = compared
    report, site = root / "report", root / "site"
    pair = {(p["model"], p["caption"]): p for p in man["pairs"]}
    flava, clip = pair[(flava_id, dog)], pair[(clip_id, dog)]
    page, ev = _open(browser, (site / "pairs" / f"{flava['id']}.html").as_uri())
    cols = _columns(page)
    assert [c["model"] for c in cols] == [flava_id, clip_id]  # this page's model first
    heads = page.locator("#compare .colhead").all_inner_texts()
    assert "FlavaForPreTraining" in heads[0] and "CLIPModel" in heads[1]

    page.check('#methods input[value="relevancy"]')
    caption_maps = [c["map"] for c in _columns(page)]
    word = next(w for w in flava["words"] if w["span"][0] == len("the dog,, "))  # the phrase's first word
    page.locator(f'.chip[data-kind="words"][data-index="{flava["words"].index(word)}"]').click()
    cols = _columns(page)
    want = [_word_map(report, e, "relevancy", word["span"]) for e in (flava, clip)]
    assert want[0][0] != want[1][0]  # word 4 for FLAVA, 3 for CLIP: only its span matches
    assert [c["map"] for c in cols] == [w[1] for w in want]
    assert all(c["map"] and c["map"] != before and not c["hidden"] for c, before in zip(cols, caption_maps))
    # the word is in the boxed phrase: each model's own pointing verdict
    for c, e in zip(cols, (flava, clip)):
        hit = next(w for w in e["phrases"][0]["words"] if w["text"] == word["text"])["scores"]["relevancy"]["pointing"]
        assert c["verdict"].startswith("pointing: hit" if hit else "pointing: miss")

    # a word one tokenizer splits in two: that column says so instead of showing a map
    page.locator('.chip[data-kind="words"]', has_text="42").click()
    cols = _columns(page)
    assert cols[0]["map"] and not cols[0]["hidden"]
    assert cols[1]["hidden"] and cols[1]["map"] == ""
    assert cols[1]["note"] == f"{clip_id} has no word \u201c42\u201d: its tokenizer reads \u201c4\u201d \u201c2\u201d there"

    # a multimodal method: CLIP has no multimodal encoder, so no such map, and the column says why
    page.locator(f'.chip[data-kind="words"][data-index="{flava["words"].index(word)}"]').click()
    page.check('#methods input[value="mm-relevancy"]')
    cols = _columns(page)
    assert cols[0]["map"] == _word_map(report, flava, "mm-relevancy", word["span"])[1] and not cols[0]["hidden"]
    assert cols[1]["hidden"] and cols[1]["map"] == ""
    assert cols[1]["note"].startswith(f"{clip_id} has no Relevancy (multimodal, per word) map: ")
    assert "mm-relevancy: skipped, " + cols[1]["note"].split(" map: ")[1] in clip["notes"]
    page.locator("#compare").screenshot(path="/tmp/compare-mm.png")

    # a phrase, by index, with the method both have; the whole caption
    page.check('#methods input[value="gradcam"]')
    page.locator('.chip[data-kind="phrases"]').first.click()
    cols = _columns(page)
    for c, e in zip(cols, (flava, clip)):
        arr = read_maps(report, e)[e["maps"]["keys"]["gradcam"]["phrases"]][0]
        assert c["map"] == _b64(_quantize(arr))
        assert ("hit" if e["phrases"][0]["scores"]["gradcam"]["pointing"] else "miss") in c["verdict"]
    # CLIP's processor centre-crops: its map covers the crop; around it, the "not seen" shade
    corner, middle = (page.locator("#compare .col").nth(1).locator("canvas").evaluate(
        f"c => Array.from(c.getContext('2d').getImageData({x}, {x}, 1, 1).data)") for x in (2, 128))
    assert corner == [0, 0, 0, round(255 * (1 - 0.35))] and middle != corner
    assert clip["maps"]["region"] != [0, 0, clip["width"], clip["height"]]
    page.locator("#compare").screenshot(path="/tmp/compare.png")

    # each column links to its model's own page, where that model comes first
    link = page.locator("#compare .col").nth(1).locator("a.collink")
    assert link.get_attribute("href") == f"{clip['id']}.html#method=gradcam"
    with page.expect_navigation():
        link.click()
    assert [c["model"] for c in _columns(page)] == [clip_id, flava_id]
    assert page.locator('#methods input[value="mm-relevancy"]').count() == 0
    # ... and its methods carry its own scores, not the first model's
    shown = dict(page.locator("#methods label").evaluate_all(
        "ls => ls.map(l => [l.querySelector('input').value, l.querySelector('.num').dataset.phrases])"))
    own, first = ({n: f"{v['pointing']:.2f}" for n, v in m["summary"]["methods"].items() if n in shown}
                  for m in man["models"][::-1])
    assert shown == own and own != first
    assert ev["errors"] == [] and ev["failed"] == [] and ev["external"] == []

    narrow = browser.new_page(viewport={"width": 390, "height": 800})
    narrow.goto((site / "pairs" / f"{flava['id']}.html").as_uri())
    assert narrow.evaluate("document.scrollingElement.scrollWidth") <= 390  # the columns wrap
    narrow.close()

    # the index: a score table per model, each with that model's own numbers
    index, ev = _open(browser, (site / "index.html").as_uri())
    tables = index.locator("table.methods")
    assert tables.count() == 2
    assert [tables.nth(k).get_attribute("data-model") for k in range(2)] == [flava_id, clip_id]
    for k, m in enumerate(man["models"]):
        row = tables.nth(k).locator("tr", has_text="Grad-CAM").first
        assert f"{m['summary']['methods']['gradcam']['pointing']:.3f}" in row.inner_text()
    assert "not run on this model" in tables.nth(1).inner_text()
    assert ev["errors"] == []
