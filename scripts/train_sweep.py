"""Several demo trainings sharing one GPU, from one shared scene pool (scripts/gpu_sweep.sh).

    python scripts/train_sweep.py render OUTDIR 64,96,128    # the 24,000 varied training scenes, each size
    python scripts/train_sweep.py train NAME JSON OUTDIR     # one run: TrainSettings fields as JSON

``render`` draws each training scene once (``make_scene`` + ``vary_drawing``, as
``demo.train.render_pool`` does) and resizes it to every size, on POOL_WORKERS processes;
``train`` runs ``demo.train.train`` with that pool in place of its own rendering (the same
pixels), on SWEEP_DEVICE (default cuda), saving to $SWEEP/NAME with a log at $SWEEP/NAME.log.
"""
import json, os, pickle, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np


def _chunk(args):
    seeds, sizes = args
    from PIL import Image
    from groundreport.demo.augment import vary_drawing
    from groundreport.demo.scenes import make_scene
    imgs = {s: [] for s in sizes}; objs = []
    for sd in seeds:
        sc = make_scene(sd)
        img = vary_drawing(sc.image, sd)
        for s in sizes:
            imgs[s].append(np.asarray(img.resize((s, s), Image.BICUBIC), dtype=np.uint8))
        objs.append([(o.colour, o.shape) for o in sc.objects])
    return {s: np.stack(v) for s, v in imgs.items()}, objs


def render(outdir, sizes, n=int(os.environ.get('POOL_N', 24000)), workers=int(os.environ.get('POOL_WORKERS', 14))):
    from groundreport.demo.scenes import TRAIN_SEED_BASE
    t = time.time()
    chunks = [(list(range(TRAIN_SEED_BASE + i, TRAIN_SEED_BASE + min(i + 500, n))), sizes) for i in range(0, n, 500)]
    with ProcessPoolExecutor(workers) as ex:
        parts = list(ex.map(_chunk, chunks))
    out = Path(outdir); out.mkdir(parents=True, exist_ok=True)
    for s in sizes:
        np.save(out / f"pool{s}.npy", np.concatenate([p[0][s] for p in parts]))
    pickle.dump([o for p in parts for o in p[1]], open(out / "objs.pkl", "wb"))
    print(f"rendered {n} scenes at {sizes} in {time.time() - t:.0f}s", flush=True)


def train_one(name, settings_json, pooldir):
    import groundreport.demo.train as T
    cfg = json.loads(settings_json)
    pooldir = Path(pooldir)

    def cached_pool(n, image_size, seed_base=None, workers=2, varied=False):
        assert varied, varied
        pool = np.load(pooldir / f"pool{image_size}.npy")
        assert len(pool) == n, (len(pool), n)
        return pool, pickle.load(open(pooldir / "objs.pkl", "rb"))

    T.render_pool = cached_pool
    out = Path(os.environ["SWEEP"]) / name
    logf = open(Path(os.environ["SWEEP"]) / f"{name}.log", "a")

    def log(s):
        logf.write(s + "\n"); logf.flush()

    log(f"settings {cfg}")
    res = T.train(T.TrainSettings(out_dir=out, device=os.environ.get("SWEEP_DEVICE", "cuda"), threads=2, varied_drawing=True, **cfg), log=log)
    log(f"RESULT {json.dumps(res)}")


if __name__ == "__main__":
    if sys.argv[1] == "render":
        render(sys.argv[2], [int(s) for s in sys.argv[3].split(",")])
    else:
        train_one(sys.argv[2], sys.argv[3], sys.argv[4])
