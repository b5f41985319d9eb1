"""The ``groundreport`` command: parses options and calls ``commands/``, one module per verb.

Heavy imports (torch, transformers) happen inside the commands only, so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import BadInput, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Text-conditioned grounding maps for FLAVA, CLIP, SigLIP and BLIP, as a static HTML "
                       "gallery.")
demo_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The bundled demo model and scenes.")
app.add_typer(demo_app, name="demo")

# Kept here as strings so that --help never imports torch; tests check them against the registry.
DEFAULT_METHODS = "gradcam,relevancy,legrad,mm-relevancy,mm-gradcam,mm-masked,mm-attention,attention,rollout"
ALL_METHODS = DEFAULT_METHODS + ",occlusion"  # occlusion: one image forward per patch (or per 2 x 2 on big grids)
SHIFTS_HELP = ("Relevancy, Grad-CAM, LeGrad and masked-word (mm-masked) maps averaged over copies of the image moved by half a patch: "
               "4 (right, down, both; those methods cost 4x), 2 (diagonal only) or 1 (off).")
SMOOTH_HELP = ("Smooth the maps of the methods that peak on a few patches (relevancy, masked word) with a "
               "Gaussian of one patch; --no-smooth: every method's raw map.")


def _fail(msg: str, code: int = 2):
    typer.echo(f"groundreport: error: {msg}", err=True)
    raise typer.Exit(code)


def _call(fn, *args, **kwargs):
    """Run a command; a user's mistake is one line on stderr and exit 2 (3: --strict)."""
    from .commands.build import StrictFailure

    try:
        return fn(*args, **kwargs)
    except StrictFailure as e:
        _fail(str(e), code=3)
    except (UserError, BadInput) as e:
        _fail(str(e))


def _methods(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def _models(names: list[str]) -> dict:
    """BuildConfig's model fields: ``model`` the first, ``models`` all of them when several."""
    return {"model": names[0], "models": list(names) if len(names) > 1 else []}


@app.command()
def build(
    images: Optional[Path] = typer.Option(None, help="Images folder (default: next to --captions)."),
    captions: Optional[Path] = typer.Option(None, help="captions.txt, dataset_flickr30k.json, a grounding .jsonl, "
                                             "results_20130124.token, results.csv, or a Flickr30k Entities folder."),
    dataset: str = typer.Option("auto", help="auto, csv, karpathy, entities, jsonl, token, pipe."),
    split: str = typer.Option("test", help="Split for Karpathy/Entities files (train, val, test, all)."),
    sample: Optional[int] = typer.Option(20, help="Number of images to sample (0 = all)."),
    captions_per_image: int = typer.Option(1, help="Captions per sampled image (1 to 5)."),
    seed: int = typer.Option(0, help="Sampling seed (recorded in the manifest)."),
    model: Optional[list[str]] = typer.Option(None, help="Hub id, local save_pretrained folder, 'demo' or 'demo-clip' "
                                              "(default facebook/flava-full); FLAVA, CLIP, SigLIP or BLIP-ITM. "
                                              "Repeat to explain several models into one report."),
    offline: bool = typer.Option(False, help="Local files only; never contact the Hub."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("fp32", help="fp32, bf16 or fp16 (fp16 on GPU only)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated explainers. Default: all but occlusion "
                                          "(one forward per patch); with --demo, all."),
    target: str = typer.Option("contrastive", help="Caption score for image-encoder methods: contrastive or itm."),
    batch_size: int = typer.Option(1, help="Pairs explained together (halved on out-of-memory). Under torchrun: "
                                   "per process."),
    shifts: Optional[int] = typer.Option(None, help=SHIFTS_HELP + " Default 4; 2 with --demo."),
    smooth: bool = typer.Option(True, help=SMOOTH_HELP),
    report: Path = typer.Option(Path("report"), help="Where arrays and the manifest go."),
    site: Path = typer.Option(Path("site"), help="Where the HTML gallery goes."),
    demo: bool = typer.Option(False, help="Bundled scenes + the two bundled models (demo, demo-clip): runs offline."),
    faithfulness: bool = typer.Option(False, help="Also measure faithfulness (deletion/insertion, confidence "
                                      "change) and run the sanity checks (caption shuffle, weight randomisation)."),
    strict: bool = typer.Option(False, help="Exit non-zero if any input was skipped."),
    progress: bool = typer.Option(True, help="Show progress bars."),
):
    """Compute maps for sampled pairs (report/) and render the gallery (site/)."""
    from .commands import build as command

    def run():
        nonlocal captions, images, dataset, model, sample
        from .compute import BuildConfig

        if demo:
            from .demo.bundle import demo_jsonl

            captions, images, dataset = demo_jsonl(), None, "jsonl"
            model = model or ["demo", "demo-clip"]  # the two bundled models, side by side
            sample = None if sample in (None, 20) else sample
        if captions is None:
            raise UserError("pass --captions (and --images), or --demo for the bundled scenes")
        cfg = BuildConfig(captions=str(captions), images=str(images) if images else None, dataset=dataset,
                          split=split, sample=None if sample == 0 else sample, captions_per_image=captions_per_image,
                          seed=seed, **_models(model or ["facebook/flava-full"]), offline=offline, device=device,
                          dtype=dtype,
                          methods=_methods(methods or DEFAULT_METHODS), target=target,
                          report=str(report), demo=demo, faithfulness=faithfulness, batch_size=batch_size,
                          shifts=(2 if demo else 4) if shifts is None else shifts, smooth=smooth)
        command.run(cfg, site, strict, progress)

    _call(run)


@app.command()
def render(
    report: Path = typer.Option(Path("report"), help="A finished report/ folder."),
    site: Path = typer.Option(Path("site"), help="Where the HTML gallery goes (replaced atomically)."),
):
    """Re-render site/ from report/ without loading a model."""
    from .commands import render as command

    _call(command.run, report, site)


@app.command()
def explain(
    image: Path = typer.Argument(..., help="An image file."),
    caption: str = typer.Argument(..., help="The caption (quote it)."),
    out: Path = typer.Option(Path("out"), help="Output folder for maps.npz and overlays."),
    model: str = typer.Option("facebook/flava-full", help="Hub id, local folder, 'demo' or 'demo-clip'."),
    phrase: list[str] = typer.Option([], help="A phrase of the caption to target (repeatable)."),
    offline: bool = typer.Option(False),
    device: str = typer.Option("auto"),
    dtype: str = typer.Option("fp32"),
    methods: str = typer.Option(DEFAULT_METHODS, help="Comma-separated explainers; add occlusion for the "
                                "perturbation reference (one forward per patch)."),
    target: str = typer.Option("contrastive"),
    shifts: int = typer.Option(4, help=SHIFTS_HELP),
    smooth: bool = typer.Option(True, help=SMOOTH_HELP),
):
    """Explain one image-caption pair: maps.npz, a figure per map, index.json naming them."""
    from .commands import explain as command

    _call(command.run, image, caption, out, model, list(phrase), offline, device, dtype, _methods(methods), target,
          shifts, smooth)


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
    from .commands import publish as command

    _call(command.run, site, repo, remote, branch, message, push, cname)


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
    from .commands import download as command

    _call(command.run, name, dest, base_url, keep_parts, source, split, limit, seed, progress)


@app.command("eval")
def evaluate(
    model: Optional[list[str]] = typer.Option(None, help="Hub id, local folder, 'demo' (the default) or 'demo-clip'; "
                                              "repeat to score several models."),
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
    batch_size: int = typer.Option(1, help="Pairs explained together (halved on out-of-memory)."),
    shifts: int = typer.Option(4, help=SHIFTS_HELP),
    smooth: bool = typer.Option(True, help=SMOOTH_HELP),
    report: Path = typer.Option(Path("report-eval"), help="Where the scored report goes."),
    faithfulness: bool = typer.Option(False, help="Also measure faithfulness and run the sanity checks."),
    device: str = typer.Option("auto"),
    offline: bool = typer.Option(False),
    progress: bool = typer.Option(True),
):
    """Score every method's maps against boxes (pointing game, box accuracy) next to chance."""
    from .commands import evaluate as command
    from .compute import BuildConfig

    cfg = BuildConfig(captions=str(captions) if captions else None, images=str(images) if images else None,
                      dataset=dataset, split=split, sample=None if sample == 0 else sample, seed=seed,
                      **_models(model or ["demo"]), offline=offline, device=device, methods=_methods(methods),
                      target=target, report=str(report), faithfulness=faithfulness, batch_size=batch_size,
                      shifts=shifts, smooth=smooth)
    _call(command.run, cfg, scenes, progress)


@demo_app.command("train")
def demo_train(
    out: Path = typer.Option(Path("demo-model"), help="Where to save the trained model."),
    minutes: float = typer.Option(45.0, help="Time cap; with --steps 0, the budget the cosine schedule fills."),
    steps: Optional[int] = typer.Option(None, help="Optimiser steps (the schedule; a seed and step count give the "
                                        "same weights again). Default: the recipe's (flava 1500, clip 3616, flava-64 2043); "
                                        "0: fill the time budget instead."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(2),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:N."),
    split: str = typer.Option("test", help="Held-out scenes to score it on: test, or val."),
    family: str = typer.Option("flava", help="flava (the 'demo' model: on demo-clip's frozen vision tower), clip "
                               "(the 'demo-clip' model), or flava-64 (the previous demo FLAVA, from scratch)."),
):
    """Train a demo model from scratch on synthetic scenes (captions only, no boxes)."""
    from .commands import demo_train as command

    _call(command.run, out, minutes, steps, seed, threads, device, split, _methods(ALL_METHODS), family)


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
