"""report/: the one owner of its layout, its schema and its version.

Compute (``compute.py``), evaluation and rendering all read and write report/ through this
module; no other module names a file in it or a key of its entries.

Layout (documented in docs/report-schema.md):
  manifest.json                                      the run: config, model, methods, pairs, summary
  images/<sha12>.jpg, images/<sha12>_thumb.webp      display copy and thumbnail of each image
  pairs/<pair_id>/maps.npz                           float16 maps, keys "<method>/<level>"
  pairs/<pair_id>/<method>_heatmap.webp|_overlay.webp caption-level panels
  pairs/<pair_id>/entry.json                         the pair's manifest entry, written LAST
An entry.json only ever exists next to complete artifacts: it is the resume marker.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import __version__, atomic
from .errors import UserError

SCHEMA_VERSION = 2
# Bump when a scoring rule changes (pointing game, box accuracy, baselines, word selection),
# so that an upgraded tool re-scores instead of reusing stale numbers. 1: first-pixel argmax;
# 2: ties at the middle of the tied pixels, a constant map is a miss.
SCORING_VERSION = 3  # 3: a constant map misses box accuracy too; 2: pointing ties at the middle, constant maps miss
MANIFEST = "manifest.json"
ENTRY = "entry.json"
MAP_LEVELS = ("caption", "words", "phrases", "layers", "heads")


# -- identity of a pair ---------------------------------------------------------------------
def map_settings(methods, target: str, dtype: str, faithfulness: bool = False,
                 method_versions: dict[str, int] | None = None, shifts: int = 1,
                 smoothing: dict[str, float] | None = None) -> dict:
    """Every setting that changes a pair's maps, scores or checks (part of every pair's id).
    ``method_versions``: each method's ``Explainer.version``; only those above 1 enter the id,
    so the ids of pairs whose methods never changed stay as they were; likewise ``shifts`` and
    ``smoothing`` (each method's smoothing sigma; only those above 0)."""
    settings = {"methods": sorted(methods), "target": target, "dtype": dtype, "faithfulness": faithfulness,
                "tool": __version__, "schema": SCHEMA_VERSION, "scoring": SCORING_VERSION}
    versions = {m: v for m, v in sorted((method_versions or {}).items()) if v > 1}
    if versions:
        settings["method_versions"] = versions
    if shifts != 1:
        settings["shifts"] = shifts
    smoothed = {m: s for m, s in sorted((smoothing or {}).items()) if s > 0}
    if smoothed:
        settings["smooth"] = smoothed
    return settings


def pair_id(model_id: str, revision: str, image_sha: str, caption, settings: dict) -> str:
    """16 hex of sha256 over the model, the image bytes, the caption and its phrases, and the
    settings (``map_settings``): a rerun reuses a pair only when all of them are equal."""
    key = json.dumps([model_id, revision, image_sha, caption.text,
                      [(p.text, p.boxes, p.span) for p in caption.phrases], settings], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- one pair ---------------------------------------------------------------------------------
def clean_temp_files(report: Path) -> None:
    """Remove temp files of a run killed mid-write (complete files are never named like this)."""
    for stale in Path(report).rglob(".*.tmp"):
        stale.unlink(missing_ok=True)


def entry_files(entry: dict, with_maps: bool = True) -> list[str]:
    """Every report-relative file a pair entry names (the maps' npz optional)."""
    files = [entry["image"], entry["thumb"]] + [p for o in entry["overlays"].values() for p in o.values()]
    return ([entry["maps"]["file"]] if with_maps else []) + files


def finished_entry(report: Path, pid: str) -> dict | None:
    """A finished pair's entry, or None when it is absent, unreadable, or any file it names has gone."""
    done = Path(report) / "pairs" / pid / ENTRY
    if not done.is_file():
        return None
    try:
        entry = json.loads(done.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not all((Path(report) / f).is_file() for f in entry_files(entry)):
        return None
    entry.setdefault("rank", 0)  # written before ranks were recorded: by a one-process run
    return entry


def _maps_to_arrays(maps) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]], dict[str, dict]]:
    """MethodMaps per method -> (flat npz dict, key index, flat flags).

    A map is *flat* when it is constant: normalisation leaves it all zeros, and the method
    found no evidence anywhere. Caption level: one bool; words/phrases: one bool each."""
    arrays, index, flat = {}, {}, {}
    for method, mm in maps.items():
        index[method], flat[method] = {}, {}
        for level in MAP_LEVELS:
            arr = getattr(mm, level)
            if arr is None:
                continue
            key = f"{method}/{level}"
            arrays[key] = arr.astype(np.float16)
            index[method][level] = key
            if level == "caption":
                flat[method]["caption"] = bool(arr.max() <= 0)
            elif level in ("words", "phrases"):
                flat[method][level] = [bool(a.max() <= 0) for a in arr]
    return arrays, index, flat


# the header np.save writes for a C-order array; anything else goes through np.load
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|=][a-z]\d+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\), \}")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # a zip's central directory record


def _zip_members(raw: bytes) -> dict[str, bytes] | None:
    """The members of a zip as np.savez writes it (stored or deflated, no zip64 sizes, no
    encryption), by name; None for any other zip, left to the zipfile module."""
    end = raw.rfind(b"PK\x05\x06")
    if end < 0 or end + 22 > len(raw):
        return None
    count, _, pos = struct.unpack_from("<HII", raw, end + 10)
    out = {}
    for _ in range(count):
        if pos + _CENTRAL.size > len(raw):
            return None
        (sig, _, _, flags, method, _, _, crc, csize, _, nlen, xlen, clen, _, _, _, local) = _CENTRAL.unpack_from(raw, pos)
        if sig != 0x02014B50 or flags & 1 or method not in (0, 8) or 0xFFFFFFFF in (csize, local):
            return None
        name = raw[pos + 46:pos + 46 + nlen].decode("utf-8")
        pos += 46 + nlen + xlen + clen
        start = local + 30 + int.from_bytes(raw[local + 26:local + 28], "little") + int.from_bytes(raw[local + 28:local + 30], "little")
        data = raw[start:start + csize]
        data = zlib.decompress(data, -15) if method == 8 else data
        if zlib.crc32(data) != crc:
            return None
        out[name] = data
    return out


def _npy(raw: bytes) -> np.ndarray:
    m = _NPY_HEADER.match(raw, 10) if raw[:8] == b"\x93NUMPY\x01\x00" else None
    if m is None:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    shape = tuple(int(s) for s in m.group(2).split(b",") if s.strip())
    return np.frombuffer(raw, np.dtype(m.group(1).decode()), offset=10 + int.from_bytes(raw[8:10], "little")).reshape(shape)


def read_maps(report: Path, entry: dict) -> dict[str, np.ndarray]:
    """Every array of a pair, by npz key (``entry["maps"]["keys"][method][level]``), read-only.

    Parses the zip and the .npy headers itself where it can: np.load's zipfile members and
    ast.literal_eval of each header were most of ``render``'s time on a 20,000-pair report."""
    path = Path(report) / entry["maps"]["file"]
    raw = path.read_bytes()
    members = _zip_members(raw)
    if members is None:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = {info.filename: zf.read(info) for info in zf.infolist()}
    return {(k[:-4] if k.endswith(".npy") else k): _npy(v) for k, v in members.items()}


def _write_display_image(report: Path, image, key: str) -> tuple[str, str]:
    from .overlays import display_copy, thumbnail

    rel, thumb_rel = f"images/{key}.jpg", f"images/{key}_thumb.webp"
    if not (report / rel).is_file():
        atomic.write_image(report / rel, display_copy(image), "JPEG", quality=88)
    if not (report / thumb_rel).is_file():
        atomic.write_image(report / thumb_rel, thumbnail(image), "WEBP", quality=80)
    return rel, thumb_rel


def pair_warnings(words, score: float, itm: float | None, truncated: bool = False) -> list[str]:
    """One-line notes on what the maps of this pair can mean."""
    out = []
    if truncated and words:
        out.append(f"the caption is longer than the model's text limit and was cut after \"{words[-1].text}\" "
                   f"(character {words[-1].span[1]}): the words after it have no map and no score")
    content = [w for w in words if w.is_content]
    unknown = [w.text for w in content if w.unknown]
    if content and 2 * len(unknown) > len(content):
        out.append(f"the model does not know most of this caption's words ({len(unknown)} of {len(content)} "
                   f"content words are unknown to its tokenizer: {', '.join(unknown[:6])}); its maps say little")
    elif unknown:
        out.append(f"unknown to the model's tokenizer: {', '.join(unknown[:6])} (their maps are not about them)")
    if score < 0:
        out.append(f"negative alignment score ({score:.2f}): the model does not match this caption to this image")
    if itm is not None and itm < 0:
        out.append(f"the ITM head rejects this caption for this image (logit {itm:.2f})")
    return out


def write_pair(report: Path, pair, image, image_sha: str, pid: str, result, phrase_entries, timer=None,
               model_id: str | None = None, checks: dict | None = None, rank: int = 0) -> dict:
    """Arrays, overlays, then entry.json (last: it marks the pair done). Returns the entry.

    ``rank``: the process (torchrun rank) that explained the pair, 0 for a one-process run."""
    import time

    from .overlays import display_copy, overlay, scale_region

    report = Path(report)
    t = time.perf_counter()
    image_rel, thumb_rel = _write_display_image(report, image, image_sha[:12])
    arrays, index, flat = _maps_to_arrays(result.maps)
    npz_rel = f"pairs/{pid}/maps.npz"
    atomic.write_npz(report / npz_rel, arrays)
    disp = display_copy(image)
    region = result.region or (0.0, 0.0, float(image.size[0]), float(image.size[1]))
    overlays = {}
    for method, mm in result.maps.items():
        heat, over = overlay(disp, mm.caption, region=scale_region(result.region, image.size, disp.size))
        h_rel, o_rel = f"pairs/{pid}/{method}_heatmap.webp", f"pairs/{pid}/{method}_overlay.webp"
        atomic.write_image(report / h_rel, heat, "WEBP", quality=80, method=0)  # smooth: 3x faster, ~10% more bytes
        atomic.write_image(report / o_rel, over, "WEBP", quality=80)
        overlays[method] = {"heatmap": h_rel, "overlay": o_rel}
    if timer is not None:
        timer.add("image encoding", time.perf_counter() - t)
    entry = {
        "id": pid,
        "model": model_id,
        "image_id": pair.example.image_id,
        "image": image_rel,
        "thumb": thumb_rel,
        "width": image.size[0],
        "height": image.size[1],
        "caption": pair.caption.text,
        "caption_index": pair.caption_index,
        "truncated": result.truncated,
        "tokens": result.tokens,
        "words": [{"text": w.text, "span": list(w.span), "tokens": w.tokens, "punct": w.is_punctuation,
                   "content": w.is_content, "unknown": w.unknown} for w in result.words],
        "score": round(result.score, 5),
        "itm": None if result.itm is None else round(result.itm, 5),
        "maps": {"file": npz_rel, "keys": index, "flat": flat, "region": [round(float(v), 3) for v in region]},
        "overlays": overlays,
        "phrases": phrase_entries,
        "notes": result.notes,
        "warnings": pair_warnings(result.words, result.score, result.itm, result.truncated),
        "rank": rank,
    }
    if checks is not None:
        entry["checks"] = checks  # --faithfulness: metrics/checks.py
    atomic.write_json(report / "pairs" / pid / ENTRY, entry)
    return entry


# -- the manifest -------------------------------------------------------------------------------
def flat_counts(entries: list[dict]) -> dict[str, int]:
    """Per method, how many pairs' caption maps are flat."""
    out: dict[str, int] = {}
    for e in entries:
        for method, f in e["maps"].get("flat", {}).items():
            out[method] = out.get(method, 0) + int(bool(f.get("caption")))
    return out


def write_manifest(report: Path, manifest: dict) -> None:
    manifest = dict(manifest, schema_version=SCHEMA_VERSION, scoring_version=SCORING_VERSION)
    atomic.write_json(Path(report) / MANIFEST, manifest)


def load_manifest(report: Path) -> dict:
    path = Path(report) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found: run 'groundreport build' first (or pass --report)")
    collecting = gc.isenabled()
    gc.disable()  # the collector walking a million fresh objects was 60% of a 200 MB load
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise UserError(f"{path}: schema_version {found!r} is not supported (want {SCHEMA_VERSION}); "
                        "rerun 'groundreport build' with this version")
    return manifest
