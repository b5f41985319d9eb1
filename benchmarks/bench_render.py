"""Time ``groundreport render`` on a large report fabricated from a real one.

    python benchmarks/bench_render.py report --pairs 20000 [--keep DIR]

The fabricated report is a real report's pairs repeated under new ids: each new pair's maps
and overlays are hard links to its source pair's files (copies where the file system has no
links), its entry.json and the manifest name the new paths. render() cannot tell it from a
built report. Prints render's seconds (wall and CPU), the index's bytes, the site's bytes per
pair and how many pairs fit in GitHub Pages' 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from groundreport.report import ENTRY, MANIFEST
from groundreport.render.site import render

PAGES_LIMIT = 10**9  # GitHub Pages: a published site may be at most 1 GB


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is the same to render()
        shutil.copyfile(src, dst)


def fabricate(source: Path, dest: Path, n: int, edit=None, captions_per_image: int | None = None) -> dict:
    """Write a report of ``n`` pairs at ``dest`` from ``source``'s pairs, cycled, under new ids.
    ``captions_per_image``: every that many pairs get images of their own (Flickr30k has 5
    captions per image), so that the site holds as many image files as a real one would;
    None: the source's images are shared by all pairs. ``edit(i, entry)`` may change a new
    entry (caption, score, ...) before it is written. Returns the new manifest."""
    source, dest = Path(source), Path(dest)
    manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    (dest / "images").mkdir(parents=True)
    for f in (source / "images").iterdir():
        _link(f, dest / "images" / f.name)
    srcs = manifest["pairs"]
    texts = [json.dumps(p) for p in srcs]
    pairs = []
    for i in range(n):
        k = i % len(srcs)
        sid, pid = srcs[k]["id"], f"{i:08d}{srcs[k]['id'][:8]}"
        folder = dest / "pairs" / pid
        folder.mkdir(parents=True)
        for f in (source / "pairs" / sid).iterdir():
            if f.name != ENTRY:
                _link(f, folder / f.name)
        entry = json.loads(texts[k].replace(sid, pid))
        if captions_per_image:
            for key in ("image", "thumb"):  # images/<sha>.jpg -> images/<sha>-<image number>.jpg
                stem, ext = entry[key].rsplit(".", 1)
                entry[key] = f"{stem}-{i // captions_per_image}.{ext}"
                if not (dest / entry[key]).exists():
                    _link(source / srcs[k][key], dest / entry[key])
        if edit is not None:
            edit(i, entry)
        (folder / ENTRY).write_text(json.dumps(entry), encoding="utf-8")
        pairs.append(entry)
    manifest["pairs"] = pairs
    (dest / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def _pairs_in(report: Path) -> int | None:
    try:
        return len(json.loads((report / MANIFEST).read_text(encoding="utf-8"))["pairs"])
    except (OSError, ValueError, KeyError):
        return None


def site_bytes(site: Path) -> dict[str, int]:
    """Bytes by part of the site (a hard-linked file counts in full: Pages stores a copy)."""
    parts = {"pair pages": "pairs", "images": "media/images", "card maps": "media/cards", "card data": "data"}
    out = {name: sum(p.stat().st_size for p in (Path(site) / sub).rglob("*") if p.is_file()) for name, sub in parts.items()}
    out["the rest"] = sum(p.stat().st_size for p in Path(site).rglob("*") if p.is_file()) - sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a built report to replicate")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--captions-per-image", type=int, default=5,
                    help="pairs that share one image (Flickr30k: 5); 0: all share the source's images")
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temp folder)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.keep or Path(tmp)
        big, site = root / "report", root / "site"
        if _pairs_in(big) != a.pairs:  # --keep: a report fabricated before is reused
            shutil.rmtree(big, ignore_errors=True)
            t = time.perf_counter()
            fabricate(a.report, big, a.pairs, captions_per_image=a.captions_per_image or None)
            print(f"fabricated {a.pairs} pairs in {time.perf_counter() - t:.1f} s", flush=True)
        if site.exists():  # time a first render, not the removal of an old site
            shutil.rmtree(site)
        load0 = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        info = render(big, site)
        took, cpu = time.perf_counter() - t, time.process_time() - c
        children = os.times()
        parts = site_bytes(site)
    n = info["pairs"]
    size = sum(parts.values())
    per_pair = size / n
    print(f"render: {n} pairs in {took:.1f} s wall ({1000 * took / n:.2f} ms/pair); "
          f"CPU {cpu:.1f} s here + {children.children_user + children.children_system:.1f} s in workers; "
          f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print("  " + "; ".join(f"{k} {v:.1f} s" for k, v in info["stages"].items()))
    print(f"index.html {info['index_bytes']:,} bytes; card data {info['card_data_bytes']:,} bytes in "
          f"{info['card_pages']} page files; largest pair page {info['largest_pair_page_bytes']:,} bytes")
    print(f"site {size / 2**20:.1f} MiB = {per_pair / 1024:.1f} KiB per pair; "
          f"GitHub Pages' 1 GB holds {int(PAGES_LIMIT // per_pair):,} such pairs")
    print("  per pair: " + "; ".join(f"{k} {v / n / 1024:.1f} KiB" for k, v in parts.items()))


if __name__ == "__main__":
    main()
