"""Several demo trainings sharing one GPU, from one shared scene pool (scripts/gpu_sweep.sh).

    python scripts/train_sweep.py render OUTDIR 64,96,128    # the 24,000 varied training scenes, each size
    python scripts/train_sweep.py train NAME JSON OUTDIR     # one run: TrainSettings fields as JSON

``render`` draws each training scene once (``demo.train.render_pools``, varied drawing) and
keeps it at every size, on POOL_WORKERS processes; ``train`` runs ``demo.train.train`` with
that pool in place of its own rendering (the same pixels), on SWEEP_DEVICE (default cuda),
saving to $SWEEP/NAME with a log at $SWEEP/NAME.log.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np


def render(outdir: Path, sizes: list[int]) -> None:
    from groundreport.demo.train import render_pools

    n, workers = int(os.environ.get("POOL_N", 24000)), int(os.environ.get("POOL_WORKERS", 14))
    t = time.time()
    pools, objects = render_pools(n, sizes, workers=workers, varied=True)
    outdir.mkdir(parents=True, exist_ok=True)
    for size, pool in pools.items():
        np.save(outdir / f"pool{size}.npy", pool)
    (outdir / "objs.pkl").write_bytes(pickle.dumps(objects))
    print(f"rendered {n} scenes at {sizes} in {time.time() - t:.0f}s", flush=True)


def train_one(name: str, settings_json: str, pooldir: Path) -> None:
    import groundreport.demo.train as demo_train

    def cached_pool(n, image_size, seed_base=None, workers=2, varied=False):
        assert varied, "the sweep's pools are drawn with varied drawing"
        pool = np.load(pooldir / f"pool{image_size}.npy")
        assert len(pool) == n, (len(pool), n)
        return pool, pickle.loads((pooldir / "objs.pkl").read_bytes())

    demo_train.render_pool = cached_pool
    sweep = Path(os.environ["SWEEP"])
    settings = json.loads(settings_json)
    with open(sweep / f"{name}.log", "a") as logf:
        def log(line: str) -> None:
            logf.write(line + "\n")
            logf.flush()

        log(f"settings {settings}")
        res = demo_train.train(demo_train.TrainSettings(out_dir=sweep / name, threads=2, varied_drawing=True,
                                                        device=os.environ.get("SWEEP_DEVICE", "cuda"), **settings),
                               log=log)
        log(f"RESULT {json.dumps(res)}")


if __name__ == "__main__":
    if sys.argv[1] == "render":
        render(Path(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")])
    else:
        train_one(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
