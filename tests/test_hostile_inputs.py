"""A folder with every kind of broken or odd input: good pairs are built, bad ones are reported."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.errors import BadInput
from groundreport.images import load_rgb

ODD_BUT_FINE = ["grey.png", "rgba.png", "la.png", "cmyk.jpg", "sixteen.png", "palette.png", "anim.gif",
                "rotated.jpg", "one.png", "wide.png"]
BROKEN = {"truncated.jpg": "corrupt", "empty.jpg": "empty", "text.jpg": "not an image",
          "bomb.png": "too large", "missing.jpg": "missing"}


def make_folder(root):
    img = root / "Images"
    img.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    rgb.convert("L").save(img / "grey.png")
    rgb.convert("RGBA").save(img / "rgba.png")
    rgb.convert("LA").save(img / "la.png")
    rgb.convert("CMYK").save(img / "cmyk.jpg")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(img / "sixteen.png")
    pal = rgb.convert("P", palette=Image.ADAPTIVE)
    pal.info["transparency"] = 0
    pal.save(img / "palette.png", transparency=0)
    rgb.convert("P").save(img / "anim.gif")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rgb.save(img / "rotated.jpg", exif=exif.tobytes())
    Image.new("RGB", (1, 1), (200, 10, 10)).save(img / "one.png")
    Image.new("RGB", (2000, 50), (10, 200, 10)).save(img / "wide.png")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    (img / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (img / "empty.jpg").write_bytes(b"")
    (img / "text.jpg").write_text("this is not a picture\n")
    Image.new("1", (20000, 20000)).save(img / "bomb.png")
    long_caption = " ".join(["a red star"] * 200)  # 600 words
    rows = ["image,caption"] + [f"{n},a red star" for n in ODD_BUT_FINE + list(BROKEN)]
    rows += ['grey.png,"a red star, <script>alert(1)</script>"', f"wide.png,{long_caption}",
             "../../etc/passwd,a red star", "/etc/passwd,a red star", "grey.png,"]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    return root / "captions.txt"


def test_exif_orientation_is_applied(tmp_path):
    make_folder(tmp_path)
    assert load_rgb(tmp_path / "Images" / "rotated.jpg").size == (40, 60)  # stored 60x40, displayed rotated
    assert load_rgb(tmp_path / "Images" / "sixteen.png").mode == "RGB"
    with pytest.raises(BadInput, match="too large"):
        load_rgb(tmp_path / "Images" / "bomb.png")


def test_hostile_folder_end_to_end(tiny_model_dir, tmp_path):
    captions = make_folder(tmp_path)
    report, site = tmp_path / "report", tmp_path / "site"
    args = ["build", "--captions", str(captions), "--model", str(tiny_model_dir), "--sample", "0",
            "--captions-per-image", "5", "--report", str(report), "--site", str(site), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads((report / "manifest.json").read_text())
    built = {p["image"] and p["image_id"] for p in m["pairs"]}
    assert {n.rsplit(".", 1)[0] for n in ODD_BUT_FINE} <= built
    reasons = {s["item"]: s["reason"] for s in m["skipped"]}
    for name, why in BROKEN.items():
        assert any(k.startswith(name) and why in r for k, r in reasons.items()), (name, reasons)
    assert any("escapes the images folder" in r for r in reasons.values())
    assert any("absolute image path refused" in r for r in reasons.values())
    assert any(p["truncated"] for p in m["pairs"])
    for p in m["pairs"]:  # a cut caption says so on its pair, naming the last word that was read
        cut = [w for w in p["warnings"] if "longer than the model's text limit" in w]
        assert bool(cut) == p["truncated"]
        if cut:
            assert f'cut after "{p["words"][-1]["text"]}"' in cut[0] and "have no map and no score" in cut[0]
    assert "were truncated (their words past the cut have no map and no score)" in res.output
    html = "\n".join(p.read_text() for p in site.rglob("*.html"))
    assert "<script>alert(1)" not in html
    assert "input(s) skipped" in (site / "index.html").read_text()
    # nothing was written outside the given folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Images", "captions.txt", "report", "site"]
    strict = CliRunner().invoke(app, args + ["--strict"])
    assert strict.exit_code == 3


def test_out_of_memory_skips_that_pair_and_goes_on(tiny_model_dir, grounding_jsonl, tmp_path, monkeypatch):
    """An injected CUDA out-of-memory error (no GPU in CI): that pair is skipped with a reason."""
    import torch

    from groundreport.explainers.suite import Suite

    real_run = Suite.run
    calls = {"n": 0}

    def run_or_oom(self, adapter, pixels, caption, phrases=(), **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(self, adapter, pixels, caption, phrases, **kwargs)

    monkeypatch.setattr(Suite, "run", run_or_oom)
    res = CliRunner().invoke(app, ["build", "--captions", str(grounding_jsonl), "--model", str(tiny_model_dir),
                                   "--report", str(tmp_path / "r"), "--site", str(tmp_path / "s"), "--no-progress"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert len(m["pairs"]) == 2
    assert [s["reason"] for s in m["skipped"]] == ["out of GPU memory for this pair (try --dtype bf16 or fewer --methods)"]
