"""Time ``groundreport render`` on a large report made by replicating an existing one's pairs.

    python benchmarks/bench_render.py report --pairs 1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from groundreport.render.site import render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("report", type=Path)
    ap.add_argument("--pairs", type=int, default=1000)
    a = ap.parse_args()
    manifest = json.loads((a.report / "manifest.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "report"
        shutil.copytree(a.report / "images", big / "images")
        pairs = []
        for i in range(a.pairs):
            src = manifest["pairs"][i % len(manifest["pairs"])]
            pid = f"{src['id'][:10]}{i:06d}"
            shutil.copytree(a.report / "pairs" / src["id"], big / "pairs" / pid)
            entry = json.loads(json.dumps(src).replace(src["id"], pid))
            pairs.append(entry)
        manifest["pairs"] = pairs
        (big / "manifest.json").write_text(json.dumps(manifest))
        t = time.perf_counter()
        info = render(big, Path(tmp) / "site")
        took = time.perf_counter() - t
        size = sum(p.stat().st_size for p in (Path(tmp) / "site").rglob("*") if p.is_file())
    print(f"rendered {info['pairs']} pairs in {took:.1f} s ({1000 * took / info['pairs']:.1f} ms/pair); "
          f"site {size / 2**20:.1f} MiB; largest pair page {info['largest_pair_page_bytes'] / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
