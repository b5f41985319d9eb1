"""Screenshot site pages in headless Chromium (Debian's), for looking at what we ship.

usage: python scripts/screenshot.py SITE_DIR OUT_DIR [--pair N] [--click-word K]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("site", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--pair", type=int, default=0, help="which pair page (in sample order)")
    ap.add_argument("--click-word", type=int, default=None, help="click the K-th word chip first")
    ap.add_argument("--click-phrase", type=int, default=None, help="click the K-th phrase chip first")
    ap.add_argument("--method", default=None, help="choose this method on the pair page")
    ap.add_argument("--width", type=int, default=1280)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": a.width, "height": 1100})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((a.site / "index.html").resolve().as_uri())
        page.screenshot(path=str(a.out / "index.png"))  # the first screen: thumbnails lazy-load
        href = page.locator(".card a").nth(a.pair).get_attribute("href")
        page.goto((a.site / href).resolve().as_uri())
        if a.method:
            page.check(f'#methods input[value="{a.method}"]')
        if a.click_word is not None:
            page.locator('.chip[data-kind="words"]').nth(a.click_word).click()
        if a.click_phrase is not None:
            page.locator('.chip[data-kind="phrases"]').nth(a.click_phrase).click()
        page.locator(".thumb").first.click()
        page.screenshot(path=str(a.out / "pair.png"), full_page=True)
        browser.close()
    print("console errors:", errors or "none")


if __name__ == "__main__":
    main()
