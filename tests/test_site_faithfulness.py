"""The gallery's faithfulness part: the index section (table and charts) and the pair page's
curves of the selected map, on a tiny ``build --faithfulness`` report, in a real browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.metrics.faithfulness import MapFaithfulness
from groundreport.render import faithfulness as view
from groundreport.render.site import render
from conftest import scene_grounding_lines
from test_site_browser import _open, browser  # noqa: F401  (browser: a fixture)


@pytest.fixture(scope="module")
def fsite(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faithsite")
    lines = scene_grounding_lines(root, 4)
    (root / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    res = CliRunner().invoke(app, ["build", "--captions", str(root / "d.jsonl"), "--model", str(tiny_model_dir),
                                   "--report", str(root / "report"), "--site", str(root / "site"),
                                   "--faithfulness", "--no-progress"])
    assert res.exit_code == 0, res.output
    return root / "site"


def _manifest(site: Path) -> dict:
    return json.loads((site.parent / "report" / "manifest.json").read_text())


def _rerender(site: Path, tmp: Path, edit) -> Path:
    """The report copied, its manifest changed by ``edit``, rendered anew."""
    report = tmp / "report"
    shutil.copytree(site.parent / "report", report)
    man = json.loads((report / "manifest.json").read_text())
    edit(man)
    (report / "manifest.json").write_text(json.dumps(man))
    render(report, tmp / "site")
    return tmp / "site"


def _ok(ev):
    assert ev["errors"] == [] and ev["failed"] == [] and ev["external"] == [], ev


def test_index_section_table_and_charts(browser, fsite):  # noqa: F811
    man = _manifest(fsite)
    s = man["summary"]
    page, ev = _open(browser, (fsite / "index.html").as_uri())
    sec = page.locator("#faithfulness")
    assert sec.is_visible()
    rows = sec.locator("tbody tr")
    names = [rows.nth(i).get_attribute("data-method") for i in range(rows.count())]
    assert names == [m["name"] for m in man["methods"]] + ["random", "centre"]
    for name in names:
        cells = sec.locator(f'tbody tr[data-method="{name}"] td').all_inner_texts()
        f = s["faithfulness"][name]
        assert cells[1:5] == [f"{f['deletion_auc']:.3f}", f"{f['insertion_auc']:.3f}", f"{f['drop']:.3f}",
                              f"{f['increase']:.2f}"], name
        if name in ("random", "centre"):
            assert cells[5:] == ["\u2013"] * 4
            style = sec.locator(f'tbody tr[data-method="{name}"] td').first.evaluate("e => getComputedStyle(e).fontStyle")
            assert style == "italic"
            continue
        san = s["sanity"][name]
        assert cells[5] == f"{san['caption_shuffle_corr']:.2f}"
        assert cells[6] == ("caption-blind" if san["caption_blind"] else "no")
        assert cells[7] == f"{san['randomisation'][-1]:.2f}"  # every stage randomised: the last depth
        assert cells[8] == ("flagged" if san["randomisation_flag"] else "no")
    itm = [m["label"] for m in man["methods"] if m["target"] == "itm"]
    assert itm and all(label in sec.inner_text() for label in itm)
    assert "judged against a score they do not explain" in sec.inner_text()
    for src in ("assets/faithfulness.svg", "assets/randomisation.svg"):
        img = sec.locator(f'img[src="{src}"]')
        assert img.evaluate("i => i.complete && i.naturalWidth > 100"), src
    _ok(ev)


def _curve(page, kind: str, cls: str) -> tuple[np.ndarray, np.ndarray]:
    """The x (fraction) and y (value) of a drawn polyline, read back through the chart's own
    reference lines at 0 and 1 and its x axis from 0 to 1."""
    svg = page.locator(f"#faith-{kind}")
    y0, y1 = (float(svg.locator("line.ref").nth(i).get_attribute("y1")) for i in range(2))
    axis = svg.locator("line.axis").nth(1)
    x0, x1 = float(axis.get_attribute("x1")), float(axis.get_attribute("x2"))
    pts = np.array([[float(v) for v in p.split(",")] for p in svg.locator(f"polyline.{cls}").get_attribute("points").split()])
    return (pts[:, 0] - x0) / (x1 - x0), (pts[:, 1] - y0) / (y1 - y0)


def _check_target(page, rec, method: str, t: int):
    """The curves and AUCs on show are target ``t`` of ``method`` and of the random map, each
    score divided by that target's full-image score (as MapFaithfulness does)."""
    fr = rec["fractions"]
    for kind in ("deletion", "insertion"):
        for name, cls in ((method, "map"), ("random", "base")):
            mf = MapFaithfulness.from_json(fr, rec["methods"][name])
            want = (mf.deletion_norm if kind == "deletion" else mf.insertion_norm)[t]
            x, y = _curve(page, kind, cls)
            np.testing.assert_allclose(x, fr, atol=1e-3)
            np.testing.assert_allclose(y, want, rtol=0.01, atol=0.02, err_msg=f"{kind} {name} target {t}")
        assert page.inner_text(f"#faith-{kind}-auc") == f"{rec['methods'][method][kind + '_auc'][t]:.3f}"
        assert page.inner_text(f"#faith-{kind}-base") == f"{rec['methods']['random'][kind + '_auc'][t]:.3f}"


def test_pair_page_curves_follow_the_selected_map(browser, fsite):  # noqa: F811
    man = _manifest(fsite)
    # a pair whose every target scores above 0 on the full image (else the curves cannot be normalised)
    pair = next(p for p in man["pairs"] if len(p["phrases"]) >= 2
                and min(p["checks"]["faithfulness"]["methods"]["random"]["full"]) > 0)
    rec = pair["checks"]["faithfulness"]
    page, ev = _open(browser, (fsite / "pairs" / f"{pair['id']}.html").as_uri())
    data = page.evaluate("JSON.parse(document.getElementById('pair-data').textContent)")
    # only what the page draws: the page's methods and the random map, no centre map, no raw scores
    assert set(data["checks"]["methods"]) == set(data["maps"]) | {"random"}
    assert set(data["checks"]["methods"]["random"]) == {"deletion", "insertion", "deletion_auc", "insertion_auc"}
    method = page.locator("#methods input:checked").get_attribute("value")
    assert page.locator("#faith-curves").is_visible()
    _check_target(page, rec, method, 0)  # the whole caption: target 0
    caption_curve = _curve(page, "deletion", "map")[1]
    page.locator('.chip[data-kind="phrases"]').nth(1).click()
    method = page.locator("#methods input:checked").get_attribute("value")
    _check_target(page, rec, method, 2)  # the second phrase: target 2
    assert not np.allclose(_curve(page, "deletion", "map")[1], caption_curve)
    itm = next(m["name"] for m in man["methods"] if m["target"] == "itm")
    page.check(f'#methods input[value="{itm}"]')
    _check_target(page, rec, itm, 2)
    assert page.locator("#faith-itm").is_visible()
    page.locator('.chip[data-kind="words"]').first.click()
    assert page.inner_text("#faith-none") == "no faithfulness record for word maps"
    assert page.locator("#faith-curves").is_hidden()
    page.locator('.chip[data-kind="caption"]').click()
    _check_target(page, rec, page.locator("#methods input:checked").get_attribute("value"), 0)
    _ok(ev)


def test_without_faithfulness_nothing_of_it_shows(browser, fsite, tmp_path):  # noqa: F811
    def strip(man):
        # what a build without --faithfulness writes: no entry checks, no summary blocks
        for k in ("faithfulness", "faithfulness_curves", "sanity", "checks"):
            man["summary"].pop(k)
        for p in man["pairs"]:
            p.pop("checks")

    site = _rerender(fsite, tmp_path, strip)
    assert not (site / "assets" / "faithfulness.svg").exists() and not (site / "assets" / "randomisation.svg").exists()
    page, ev = _open(browser, (site / "index.html").as_uri())
    assert page.locator("#faithfulness").count() == 0 and page.locator("table.methods").count() == 1
    href = page.locator(".card a").first.get_attribute("href")
    page, ev2 = _open(browser, (site / href).as_uri())
    assert page.locator("#faith").count() == 0
    assert "checks" not in page.evaluate("JSON.parse(document.getElementById('pair-data').textContent)")
    page.locator('.chip[data-kind="phrases"]').first.click()  # pair.js runs without the block
    _ok(ev)
    _ok(ev2)


def test_checks_without_boxes_still_render(browser, fsite, tmp_path):  # noqa: F811
    def no_grounding(man):
        # --faithfulness on pairs without boxes: the summary holds only the checks' keys
        keep = ("faithfulness", "faithfulness_curves", "sanity", "checks")
        man["summary"] = {k: man["summary"][k] for k in keep}

    site = _rerender(fsite, tmp_path, no_grounding)
    page, ev = _open(browser, (site / "index.html").as_uri())
    assert page.locator("#faithfulness").is_visible()
    assert page.locator("section.scores:not(.faith)").count() == 0 and not (site / "assets" / "methods.svg").exists()
    href = page.locator(".card a").first.get_attribute("href")
    page, ev2 = _open(browser, (site / href).as_uri())
    assert page.locator("#faith").is_visible()
    _ok(ev)
    _ok(ev2)


# --- the static charts: what is drawn, not how it looks

def _captured(monkeypatch):
    figs = []
    monkeypatch.setattr(view, "save_svg", lambda fig, path: figs.append(fig))
    return figs


def test_curves_chart_draws_each_mean_curve_in_its_panel(fsite, monkeypatch):
    s = _manifest(fsite)["summary"]
    figs = _captured(monkeypatch)
    labels = {"gradcam": "G", "relevancy": "R"} | view.BASELINES
    curves = {"fractions": s["faithfulness_curves"]["fractions"],
              "methods": {k: s["faithfulness_curves"]["methods"][k] for k in ("gradcam", "relevancy", "random", "centre")}}
    view.curves_chart(curves, labels, {"gradcam": "#1f77b4", "relevancy": "#ff7f0e"}, Path("unused.svg"))
    deletion, insertion = figs[0].axes
    for ax, kind in ((deletion, "deletion"), (insertion, "insertion")):
        lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        assert set(lines) == {"G", "R", "Random map", "Centre map"}
        for name, label in (("gradcam", "G"), ("relevancy", "R"), ("random", "Random map"), ("centre", "Centre map")):
            assert list(lines[label].get_ydata()) == curves["methods"][name][kind]
            assert list(lines[label].get_xdata()) == curves["fractions"]
        assert lines["G"].get_linestyle() == "-" and lines["Random map"].get_linestyle() != "-"
        assert lines["Centre map"].get_linestyle() != "-" and lines["G"].get_color() != lines["R"].get_color()


def test_cascade_chart_puts_each_depth_on_a_shared_axis(fsite, monkeypatch):
    sanity = _manifest(fsite)["summary"]["sanity"]
    figs = _captured(monkeypatch)
    axis = view.depth_axis(sanity)
    assert axis[0] == "original" and axis[1] == "heads"
    assert axis.index("mm_block_0") < axis.index("image_block_1")  # top block first
    view.cascade_chart(sanity, {}, {}, Path("unused.svg"), 0.5)
    lines = {ln.get_label(): ln for ln in figs[0].axes[0].get_lines() if not ln.get_label().startswith("_")}
    for name, san in sanity.items():
        assert list(lines[name].get_xdata()) == [axis.index(d) for d in san["randomisation_depths"]]
        assert list(lines[name].get_ydata()) == san["randomisation"]
    assert "flagged above 0.5" in lines
