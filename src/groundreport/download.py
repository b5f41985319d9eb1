"""``groundreport download flickr30k``: the archive the original notebook used, made resumable.

The zip is published in three parts (GitHub release assets of awsaf49/flickr-dataset). Each
part is fetched into ``<part>.part`` with HTTP Range resume (a rerun, or a dropped connection,
continues where it stopped), the parts are concatenated, the zip's CRCs are checked, and
``Images/`` + ``captions.txt`` are moved into place only once everything is whole.
Standard library only (urllib): no extra dependency for a one-off download.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from .errors import UserError

FLICKR30K_BASE_URL = "https://github.com/awsaf49/flickr-dataset/releases/download/v1.0/"
FLICKR30K_PARTS = ("flickr30k_part00", "flickr30k_part01", "flickr30k_part02")
CHUNK = 1 << 20


def _total_from(resp, offset: int) -> int | None:
    cr = resp.headers.get("Content-Range")  # "bytes 100-199/1000"
    if cr and "/" in cr and cr.rsplit("/", 1)[1].strip().isdigit():
        return int(cr.rsplit("/", 1)[1])
    cl = resp.headers.get("Content-Length")
    return offset + int(cl) if cl and cl.isdigit() else None


def fetch(url: str, dest: Path, retries: int = 5, progress: bool = True, expected_sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with HTTP Range; retry dropped transfers."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    bar = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                if have and resp.status != 206:
                    have = 0  # the server ignored Range: start over
                total = _total_from(resp, have)
                if progress and bar is None:
                    from tqdm import tqdm
                    bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name)
                with part.open("ab" if have else "wb") as f:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        if bar:
                            bar.update(len(chunk))
            size = part.stat().st_size
            if total is not None and size < total:
                raise ConnectionError(f"transfer ended at {size} of {total} bytes")
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the part is complete
                break
            raise UserError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            if attempt == retries:
                raise UserError(f"download of {url} failed after {retries + 1} tries: {getattr(e, 'reason', e)}; "
                                "rerun the same command to resume") from None
            time.sleep(min(2 ** attempt * 0.2, 5))
    if bar:
        bar.close()
    if expected_sha256:
        h = hashlib.sha256()
        with part.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        if h.hexdigest() != expected_sha256:
            part.unlink()
            raise UserError(f"{dest.name}: checksum mismatch (deleted; rerun to fetch it again)")
    part.replace(dest)
    return dest


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts:
            raise UserError(f"refusing archive member that escapes the destination: {info.filename!r}")
    return zf.infolist()


def _find_layout(root: Path) -> tuple[Path, Path]:
    """Locate ``captions.txt`` and its ``Images/`` folder anywhere in the unpacked tree."""
    for captions in sorted(root.rglob("captions.txt")):
        for name in ("Images", "images", "flickr30k_images", "flickr30k-images"):
            if (captions.parent / name).is_dir():
                return captions, captions.parent / name
    raise UserError("the archive has no captions.txt next to an Images/ folder")


def download_flickr30k(dest: Path, base_url: str = FLICKR30K_BASE_URL, parts=FLICKR30K_PARTS,
                       progress: bool = True, keep_parts: bool = False) -> tuple[Path, Path]:
    dest = Path(dest)
    images, captions = dest / "Images", dest / "captions.txt"
    if images.is_dir() and captions.is_file():
        return images, captions
    dest.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    files = [fetch(base + name, dest / name, progress=progress) for name in parts]
    archive = dest / "flickr30k.zip"
    tmp_zip = dest / ".flickr30k.zip.tmp"
    with tmp_zip.open("wb") as out:
        for f in files:
            with f.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
    tmp_zip.replace(archive)
    unpack = dest / ".unpacking"
    if unpack.exists():
        shutil.rmtree(unpack)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise UserError(f"the archive is corrupt ({bad} fails its CRC); delete {dest} and retry")
            zf.extractall(unpack, members=_safe_members(zf))
    except zipfile.BadZipFile:
        raise UserError(f"{archive} is not a valid zip (a part may be incomplete); delete it and rerun") from None
    found_captions, found_images = _find_layout(unpack)
    found_images.replace(images)
    found_captions.replace(captions)
    shutil.rmtree(unpack)
    archive.unlink()
    if not keep_parts:
        for f in files:
            f.unlink()
    return images, captions


def download_flickr30k_hf(dest: Path, split: str = "test", limit: int | None = None, seed: int = 0,
                          repo: str = "nlphuji/flickr30k", progress: bool = True) -> tuple[Path, Path]:
    """Stream a Hugging Face copy (columns ``image``, ``caption`` list, ``split``, ``filename``),
    writing only the rows taken, in the notebook layout. Needs the optional ``datasets``."""
    import csv
    import io
    import itertools

    try:
        import datasets
    except ImportError:
        raise UserError("--source hf needs the 'datasets' package: pip install 'groundreport[hf]'") from None
    dest = Path(dest)
    images, captions = dest / "Images", dest / "captions.txt"
    if images.exists() or captions.exists():
        raise UserError(f"{dest} already holds Images/ or captions.txt; choose another --dest")
    try:
        stream = datasets.load_dataset(repo, split="test", streaming=True)  # one HF split; the column says which
    except Exception as e:  # the hub client raises many types; all mean "could not stream it"
        raise UserError(f"could not stream {repo}: {str(e).splitlines()[0][:160]}") from None
    if limit:
        stream = stream.shuffle(seed=seed, buffer_size=1000)
    rows = (r for r in stream if split == "all" or r.get("split") == split)
    rows = itertools.islice(rows, limit) if limit else rows
    tmp = dest / ".hf-download"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "Images").mkdir(parents=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "caption"])
    n = 0
    if progress:
        from tqdm import tqdm
        rows = tqdm(rows, total=limit, unit="image", desc=repo)
    for r in rows:
        name = PurePosixPath(str(r["filename"])).name
        r["image"].convert("RGB").save(tmp / "Images" / name, "JPEG", quality=95)
        for c in r["caption"]:
            writer.writerow([name, c])
        n += 1
    if n == 0:
        shutil.rmtree(tmp)
        raise UserError(f"no rows of split {split!r} in {repo}")
    (tmp / "captions.txt").write_text(out.getvalue(), encoding="utf-8")
    dest.mkdir(parents=True, exist_ok=True)
    (tmp / "Images").replace(images)
    (tmp / "captions.txt").replace(captions)
    tmp.rmdir()
    return images, captions
