"""The ``groundreport`` command. Heavy imports (torch, transformers) happen inside commands only."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Text-conditioned grounding maps for FLAVA, as a static HTML gallery.")
demo_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The bundled demo model and scenes.")
app.add_typer(demo_app, name="demo")

# Kept here as strings so that --help never imports torch; tests check them against the registry.
DEFAULT_METHODS = "gradcam,relevancy,mm-relevancy,mm-gradcam,mm-attention,attention,rollout"
ALL_METHODS = DEFAULT_METHODS + ",occlusion"  # occlusion: one image forward per patch
DEMO_TRAIN_STEPS = 2043  # the shipped demo model's step count (~28 min on 2 CPU cores)


def _fail(msg: str, code: int = 2):
    typer.echo(f"groundreport: error: {msg}", err=True)
    raise typer.Exit(code)


def _methods(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def _print_summary(summary: dict | None, methods: list[dict]) -> None:
    if not summary:
        return
    b = summary["baselines"]
    typer.echo(f"\nGrounding on {summary['phrases']} phrases (pointing game: argmax inside a box; box acc: IoU>=0.5)")
    typer.echo(f"  {'method':<44} pointing  box-acc")
    for m in methods:
        s = summary["methods"].get(m["name"])
        if s:
            blind = "  (ignores caption)" if m["caption_blind"] else ""
            typer.echo(f"  {m['label']:<44} {s['pointing']:8.3f} {s['box_accuracy']:8.3f}{blind}")
    typer.echo(f"  {'chance: random object':<44} {b.get('random_object', float('nan')):8.3f}")
    typer.echo(f"  {'chance: random point':<44} {b['random_point']:8.3f}")
    typer.echo(f"  {'chance: image centre':<44} {b['centre']:8.3f}")


@app.command()
def build(
    images: Optional[Path] = typer.Option(None, help="Images folder (default: next to --captions)."),
    captions: Optional[Path] = typer.Option(None, help="captions.txt, dataset_flickr30k.json, a grounding .jsonl, "
                                             "results_20130124.token, results.csv, or a Flickr30k Entities folder."),
    dataset: str = typer.Option("auto", help="auto, csv, karpathy, entities, jsonl, token, pipe."),
    split: str = typer.Option("test", help="Split for Karpathy/Entities files (train, val, test, all)."),
    sample: Optional[int] = typer.Option(20, help="Number of images to sample (0 = all)."),
    captions_per_image: int = typer.Option(1, min=1, max=5, help="Captions per sampled image."),
    seed: int = typer.Option(0, help="Sampling seed (recorded in the manifest)."),
    model: str = typer.Option("facebook/flava-full", help="Hub id, local save_pretrained folder, or 'demo'."),
    offline: bool = typer.Option(False, help="Local files only; never contact the Hub."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("fp32", help="fp32, bf16 or fp16 (fp16 on GPU only)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated explainers. Default: all but occlusion "
                                          "(one forward per patch); with --demo, all."),
    target: str = typer.Option("contrastive", help="Caption score for image-encoder methods: contrastive or itm."),
    report: Path = typer.Option(Path("report"), help="Where arrays and the manifest go."),
    site: Path = typer.Option(Path("site"), help="Where the HTML gallery goes."),
    demo: bool = typer.Option(False, help="Bundled scenes + bundled model: runs offline."),
    strict: bool = typer.Option(False, help="Exit non-zero if any input was skipped."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Compute maps for sampled pairs (report/) and render the gallery (site/)."""
    from .build import BuildConfig

    try:
        if demo:
            from .demo.bundle import demo_jsonl

            captions, images, dataset = demo_jsonl(), None, "jsonl"
            if model == "facebook/flava-full":
                model = "demo"
            sample = None if sample in (None, 20) else sample
        if captions is None:
            raise UserError("pass --captions (and --images), or --demo for the bundled scenes")
        cfg = BuildConfig(captions=str(captions), images=str(images) if images else None, dataset=dataset,
                          split=split, sample=None if not sample else sample, captions_per_image=captions_per_image,
                          seed=seed, model=model, offline=offline, device=device, dtype=dtype,
                          methods=_methods(methods or (ALL_METHODS if demo else DEFAULT_METHODS)), target=target,
                          report=str(report), demo=demo)
        _run_build(cfg, site, strict, progress)
    except UserError as e:
        _fail(str(e))


def _run_build(cfg, site: Path, strict: bool, progress: bool) -> None:
    import time

    from .build import compute
    from .datasets import load_dataset
    from .render.site import render

    t0 = time.perf_counter()
    skipped: list[tuple[str, str]] = []
    fmt, examples = load_dataset(Path(cfg.captions), Path(cfg.images) if cfg.images else None, cfg.dataset,
                                 cfg.split, skipped)
    manifest = compute(cfg, examples, fmt, skipped, progress=progress)
    info = render(Path(cfg.report), site)
    timings = dict(manifest["timings"], rendering=info["seconds"], total=time.perf_counter() - t0)
    typer.echo(f"explained {len(manifest['pairs'])} pairs ({manifest['reused_pairs']} reused from an earlier run), "
               f"skipped {len(manifest['skipped'])}")
    for s in manifest["skipped"]:
        typer.echo(f"  skipped {s['item']}: {s['reason']}")
    truncated = sum(1 for p in manifest["pairs"] if p["truncated"])
    if truncated:
        typer.echo(f"  {truncated} caption(s) were longer than the model's text limit and were truncated")
    _print_summary(manifest["summary"], manifest["methods"])
    typer.echo("\ntime per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    typer.echo(f"site: {site / 'index.html'}")
    if strict and manifest["skipped"]:
        _fail(f"--strict: {len(manifest['skipped'])} input(s) skipped", code=3)


@app.command()
def render(
    report: Path = typer.Option(Path("report"), help="A finished report/ folder."),
    site: Path = typer.Option(Path("site"), help="Where the HTML gallery goes (replaced atomically)."),
):
    """Re-render site/ from report/ without loading a model."""
    from .render.site import render as do_render

    try:
        info = do_render(report, site)
    except UserError as e:
        _fail(str(e))
    typer.echo(f"rendered {info['pairs']} pairs in {info['seconds']:.1f}s; "
               f"largest pair page {info['largest_pair_page_bytes'] / 1024:.0f} KiB; {site / 'index.html'}")


@app.command()
def explain(
    image: Path = typer.Argument(..., help="An image file."),
    caption: str = typer.Argument(..., help="The caption (quote it)."),
    out: Path = typer.Option(Path("out"), help="Output folder for maps.npz and overlays."),
    model: str = typer.Option("facebook/flava-full", help="Hub id, local folder, or 'demo'."),
    phrase: list[str] = typer.Option([], help="A phrase of the caption to target (repeatable)."),
    offline: bool = typer.Option(False),
    device: str = typer.Option("auto"),
    dtype: str = typer.Option("fp32"),
    methods: str = typer.Option(DEFAULT_METHODS, help="Comma-separated explainers; add occlusion for the "
                                "perturbation reference (one forward per patch)."),
    target: str = typer.Option("contrastive"),
):
    """Explain one image-caption pair: maps.npz plus a heatmap and an overlay per method."""
    from . import atomic
    from .api import explain as api_explain
    from .api import load_model
    from .artifacts import overlay
    from .errors import BadInput

    try:
        m = load_model(model, device=device, dtype=dtype, offline=offline)
        ex = api_explain(m, image, caption, methods=_methods(methods), phrases=phrase, target=target)
    except (UserError, BadInput) as e:
        _fail(f"{image}: {e}" if isinstance(e, BadInput) else str(e))
    arrays = {f"{k}/caption": v for k, v in ex.maps.items()}
    arrays.update({f"{k}/words": v for k, v in ex.method_word_maps.items()})
    for k, ph in ex.phrase_maps.items():
        for i, v in enumerate(ph.values()):
            arrays[f"{k}/phrase{i}"] = v
    atomic.write_npz(out / "maps.npz", arrays)
    for name, mp in ex.maps.items():
        heat, over = overlay(ex.image, mp)
        atomic.write_image(out / f"{name}_heatmap.png", heat, "PNG")
        atomic.write_image(out / f"{name}_overlay.png", over, "PNG")
    typer.echo(f"score {ex.score:.4f}" + (f", ITM logit {ex.itm:.3f}" if ex.itm is not None else ""))
    typer.echo("words: " + " | ".join(ex.words))
    typer.echo(f"wrote {len(arrays)} maps and {2 * len(ex.maps)} images to {out}")


@app.command()
def publish(
    site: Path = typer.Option(Path("site"), help="The rendered gallery."),
    repo: Path = typer.Option(Path("."), help="The git repository whose branch receives the site."),
    remote: str = typer.Option("origin", help="Remote to push to."),
    branch: str = typer.Option("gh-pages", help="Branch to write (replaced by the site's files)."),
    message: str = typer.Option("Update groundreport gallery", help="Commit message on the branch."),
    push: bool = typer.Option(True, help="Push after committing."),
    cname: Optional[str] = typer.Option(None, help="Write a CNAME file for a custom domain."),
):
    """Commit site/ to the gh-pages branch (ghp-import) and push it: GitHub Pages serves it as is."""
    from .publish import publish as do_publish

    try:
        do_publish(site, repo, remote, branch, message, push, cname)
    except UserError as e:
        _fail(str(e))
    typer.echo(f"published {site} to {branch}" + (f" and pushed to {remote}" if push else " (not pushed)"))


@app.command()
def download(
    name: str = typer.Argument(..., help="Dataset to fetch: flickr30k."),
    dest: Path = typer.Option(Path("flickr30k"), help="Destination: DEST/Images and DEST/captions.txt."),
    base_url: Optional[str] = typer.Option(None, help="Mirror URL holding flickr30k_part00..02."),
    keep_parts: bool = typer.Option(False, help="Keep the downloaded parts after unpacking."),
    source: str = typer.Option("github", help="github (the notebook's zip) or hf (nlphuji/flickr30k via datasets)."),
    split: str = typer.Option("test", help="With --source hf: train, val, test or all."),
    limit: int = typer.Option(0, help="With --source hf: stream only this many images (0 = all), shuffled by --seed."),
    seed: int = typer.Option(0),
    progress: bool = typer.Option(True),
):
    """Download Flickr30k (the notebook's archive), resumably, and unpack it atomically."""
    from .download import FLICKR30K_BASE_URL, download_flickr30k, download_flickr30k_hf

    if name != "flickr30k":
        _fail(f"unknown dataset {name!r}; available: flickr30k")
    if source not in ("github", "hf"):
        _fail(f"unknown --source {source!r}; choose github or hf")
    try:
        if source == "hf":
            images, captions = download_flickr30k_hf(dest, split, limit or None, seed, progress=progress)
        else:
            images, captions = download_flickr30k(dest, base_url or FLICKR30K_BASE_URL, progress=progress,
                                                  keep_parts=keep_parts)
    except UserError as e:
        _fail(str(e))
    typer.echo(f"ready: {images} and {captions}\n"
               f"next: groundreport build --images {images} --captions {captions}")


@app.command("eval")
def evaluate(
    model: str = typer.Option("demo", help="Hub id, local folder, or 'demo'."),
    captions: Optional[Path] = typer.Option(None, help="Annotated data (grounding .jsonl or Entities folder). "
                                             "Default: held-out demo scenes."),
    images: Optional[Path] = typer.Option(None),
    dataset: str = typer.Option("auto"),
    split: str = typer.Option("test", help="Split of the data; for the held-out demo scenes: test, or val "
                                            "(another seed range, for choosing among trained models)."),
    scenes: int = typer.Option(300, help="Held-out demo scenes (2-4 objects) when --captions is not given."),
    sample: int = typer.Option(0, help="Images to sample (0 = all)."),
    seed: int = typer.Option(0),
    methods: str = typer.Option(ALL_METHODS),
    target: str = typer.Option("contrastive"),
    report: Path = typer.Option(Path("report-eval"), help="Where the scored report goes."),
    device: str = typer.Option("auto"),
    offline: bool = typer.Option(False),
    progress: bool = typer.Option(True),
):
    """Score every method's maps against boxes (pointing game, box accuracy) next to chance."""
    try:
        summary = _evaluate(model, captions, images, dataset, split, scenes, sample, seed, _methods(methods),
                            target, report, device, offline, progress)
    except UserError as e:
        _fail(str(e))
    if not summary["summary"]:
        _fail("nothing to score: no phrase in this data has a box")
    _print_summary(summary["summary"], summary["methods"])


def _evaluate(model, captions, images, dataset, split, scenes, sample, seed, methods, target, report, device,
              offline, progress) -> dict:
    import tempfile

    from .build import BuildConfig, compute
    from .datasets import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        if captions is None:
            from .demo.scenes import heldout_seeds, write_grounding_jsonl

            captions = write_grounding_jsonl(Path(tmp), heldout_seeds(split, scenes), (2, 4))
            dataset = "jsonl"
        skipped: list[tuple[str, str]] = []
        fmt, examples = load_dataset(captions, images, dataset, split, skipped)
        cfg = BuildConfig(captions=str(captions), images=str(images) if images else None, dataset=dataset,
                          split=split, sample=sample or None, seed=seed, model=model, offline=offline,
                          device=device, methods=methods, target=target, report=str(report))
        return compute(cfg, examples, fmt, skipped, progress=progress)


@demo_app.command("train")
def demo_train(
    out: Path = typer.Option(Path("demo-model"), help="Where to save the trained model."),
    minutes: float = typer.Option(45.0, help="Time cap; with --steps 0, the budget the cosine schedule fills."),
    steps: int = typer.Option(DEMO_TRAIN_STEPS, help="Optimiser steps (the schedule; a seed and step count give the "
                              "same weights again); 0: fill the time budget instead."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    split: str = typer.Option("test", help="Held-out scenes to score it on: test, or val."),
):
    """Train the demo FLAVA from scratch on synthetic scenes (captions only, no boxes)."""
    from .demo.scenes import heldout_seeds
    from .demo.train import TrainSettings, train
    from .models.flava import resolve_device

    try:  # check the arguments before a long run, not after it
        resolve_device(device)
        heldout_seeds(split, 1)
    except UserError as e:
        _fail(str(e))
    if steps < 0 or minutes <= 0:
        _fail("--steps must be >= 0 (0: fill --minutes) and --minutes > 0")
    train(TrainSettings(out_dir=out, minutes=minutes, steps=steps or None, seed=seed, threads=threads, device=device),
          log=typer.echo)
    from .demo.retrieval import image_to_text_top1
    from .models.flava import FlavaAdapter

    top1 = image_to_text_top1(FlavaAdapter.load(str(out), device=device))
    typer.echo(f"held-out image->text retrieval, top-1 of 100 captions: {top1:.2f}")
    manifest = _evaluate(str(out), None, None, "jsonl", split, 300, 0, 0, _methods(ALL_METHODS), "contrastive",
                         out.parent / f"{out.name}-eval", device, True, True)
    _print_summary(manifest["summary"], manifest["methods"])


def _interrupted(signum, frame):
    # Ctrl-C and SIGTERM end a run the same way; typer turns the exception into exit 130.
    # Every file is written atomically, so what finished stays valid and a rerun resumes.
    typer.echo("groundreport: interrupted; finished pairs are kept and rerunning the command resumes", err=True)
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    app()
