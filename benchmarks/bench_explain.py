"""Cost of explanations on the FLAVA-full-size architecture (random weights: compute does not
depend on weight values), measured in ONE run so the printed ratios are comparable.

    python benchmarks/bench_explain.py                 # CPU, 1 thread, 5 repeats
    python benchmarks/bench_explain.py --device cuda   # a GPU

(a) one plain forward (image + text + multimodal, attentions kept, no gradients)
(b) the default suite for one pair with a 16-word caption: caption-level maps of every
    default method, per-word maps, all-layer raw attention, rollout
(c) the original notebook's per-image procedure: Grad-CAM of the image embedding's norm on
    the patch-embedding conv (forward + .backward()), then a second full forward for attentions
(d) (b) plus k = 4 targeted phrase maps (Grad-CAM + relevancy with the phrase as target)
Bars (issue 6): b/a <= 3.0, b/c <= 1.0, (d - b)/(k a) <= 1.0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CAPTION = "a man in a red jacket and a woman with a small dog near the door"
PHRASES = ["a man", "a red jacket", "a small dog", "the door"]


def build_adapter(device: str, dtype: torch.dtype, texts: list[str] = (CAPTION, *PHRASES)):
    """FLAVA-full-size with random weights and a word-level vocabulary of ``texts``."""
    from transformers import BertTokenizer, FlavaConfig, FlavaForPreTraining, FlavaProcessor
    from transformers.models.flava.image_processing_pil_flava import FlavaImageProcessorPil

    from groundreport.models.flava import FlavaAdapter

    words = sorted({w for t in texts for w in t.split()})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    torch.manual_seed(0)
    model = FlavaForPreTraining(FlavaConfig(init_codebook=False)).eval().to(device, dtype)
    proc = FlavaProcessor(image_processor=FlavaImageProcessorPil(), tokenizer=BertTokenizer(vocab=vocab))
    return FlavaAdapter(model, proc, torch.device(device), dtype, "random-flava-full-size", "random")


def notebook_procedure(adapter, pixels, enc):
    """The blog notebook: caption-blind Grad-CAM (norm of the image embedding, patch conv) + attentions."""
    flava = adapter.flava
    conv = flava.image_model.embeddings.patch_embeddings.projection
    store = {}
    h1 = conv.register_forward_hook(lambda m, i, o: store.__setitem__("act", o))
    h2 = conv.register_full_backward_hook(lambda m, gi, go: store.__setitem__("grad", go[0]))
    try:
        emb = flava.get_image_features(pixel_values=pixels).pooler_output[:, 0]
        flava.zero_grad(set_to_none=True)
        emb.norm().backward()
        cam = (store["grad"].mean((2, 3), keepdim=True) * store["act"]).sum(1).clamp(min=0)
    finally:
        h1.remove()
        h2.remove()
    with torch.no_grad():
        out = flava(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixels,
                    output_attentions=True)
        attn_map = out.image_output.hidden_states[-1].mean(-1)
    flava.zero_grad(set_to_none=True)
    return cam, attn_map


def median_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from groundreport.explainers import DEFAULT_METHODS, make_methods
    from groundreport.explainers.suite import Suite
    from groundreport.models.flava import DTYPES

    adapter = build_adapter(args.device, DTYPES[args.dtype])
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, 224, 224, generator=gen).to(adapter.device, adapter.dtype)
    enc = {k: v.to(adapter.device) for k, v in adapter.tokenize([CAPTION]).items() if k != "offset_mapping"}
    n_words = len(CAPTION.split())
    suite = Suite(make_methods(DEFAULT_METHODS))
    phrases = [(p, None) for p in PHRASES]
    phrase_suite = suite

    def plain():
        with torch.no_grad():
            adapter.forward(pixels, CAPTION)

    timings = {
        "a": median_time(plain, args.repeats, sync),
        "b": median_time(lambda: suite.run(adapter, pixels, CAPTION), args.repeats, sync),
        "c": median_time(lambda: notebook_procedure(adapter, pixels, enc), args.repeats, sync),
        "d": median_time(lambda: phrase_suite.run(adapter, pixels, CAPTION, phrases), args.repeats, sync),
    }
    k = len(PHRASES)
    a, b, c, d = (timings[x] for x in "abcd")
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"device: {dev}; dtype {args.dtype}; medians of {args.repeats}; caption of {n_words} words")
    print(f"(a) plain forward                         {a:8.3f} s")
    print(f"(b) default suite, every word's map       {b:8.3f} s")
    print(f"(c) notebook per-image procedure          {c:8.3f} s")
    print(f"(d) suite + k={k} targeted phrase maps      {d:8.3f} s")
    print(f"b/a           = {b / a:5.2f}   (bar <= 3.0)")
    print(f"b/c           = {b / c:5.2f}   (bar <= 1.0)")
    print(f"(d-b)/(k*a)   = {(d - b) / (k * a):5.2f}   (bar <= 1.0)")


if __name__ == "__main__":
    main()
