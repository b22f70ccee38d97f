"""Rendering throughput: `rcforge build` against a plain Python loop running the same task code.

    python bench/gen_vg.py --images 20000 --out bench/data/vg20k
    python bench/bench_build.py bench/data/vg20k

Steps (each timed in its own process, on image records ingested once beforehand):
- "loop": read the image-record parts, call the same `Renderer.dialogues`, write the dialogues to one Parquet
  file with pyarrow: the floor the issue sets;
- "build-1": `rcforge build` reusing that ingest, one in-process worker (FnApiRunner);
- "build-2": the same with two worker processes (Beam multi_processing);
- "dask-1", "dask-2": the same on a local Dask cluster (`--runner DaskRunner`) of one and of two worker
  processes, started before the clock (as a running cluster would be).
Targets: build-1 >= 0.6x the loop's dialogues/s; build-2 >= 1.6x build-1; dask-2 >= 1.6x dask-1.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

RECIPE = """seed: 0
sources:
  visual_genome: {{root: {root}, images: {root}, verify_images: "off"}}  # generated data has no image files
render:
  per_image: 4
  rows_per_shard: 10000
"""


def _loop(out: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rcforge.pipelines.build import read_part

    from rcforge import schemas
    from rcforge.recipe import load_recipe
    from rcforge.render import Renderer

    recipe = load_recipe(os.path.join(out, "recipe.yaml"))
    renderer = Renderer(recipe.render, recipe.seed)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    rows = []
    for entry in manifest["sources"].values():
        for part in entry["parts"]:
            for record in read_part(os.path.join(out, part)):
                rows.extend(renderer.dialogues(record))
    rows.sort(key=lambda r: r["id"])
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.DIALOGUE), os.path.join(out, "loop.parquet"),
                   compression="zstd")
    return len(rows)


def _build(out: str, workers: int) -> int:
    from rcforge.pipelines.build import build

    from rcforge.recipe import load_recipe

    args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"] if workers > 1 else []
    manifest = build(load_recipe(os.path.join(out, "recipe.yaml")), out, beam_args=args, progress=False)
    assert manifest.build.reused_ingest
    return manifest.build.dialogues


def _dask(out: str, workers: int) -> tuple[int, float]:
    from dask.distributed import LocalCluster
    from rcforge.pipelines import runners
    from rcforge.pipelines.build import build

    from rcforge.recipe import load_recipe

    recipe = load_recipe(os.path.join(out, "recipe.yaml"))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        args = ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]
        with runners.beam_options(args) as options:
            started = time.perf_counter()
            manifest = build(recipe, out, beam_args=options, progress=False)
            seconds = time.perf_counter() - started
    assert manifest.build.reused_ingest
    return manifest.build.dialogues, seconds


def child(what: str, out: str) -> None:
    started = time.perf_counter()
    if what.startswith("dask-"):
        n, seconds = _dask(out, int(what.split("-")[1]))
    else:
        n = _loop(out) if what == "loop" else _build(out, int(what.split("-")[1]))
        seconds = time.perf_counter() - started
    print(json.dumps({"what": what, "dialogues": n, "seconds": round(seconds, 2),
                      "dialogues_per_s": round(n / seconds)}))


def main(root: str) -> None:
    out = tempfile.mkdtemp(prefix="rcforge-bench-build-")
    with open(os.path.join(out, "recipe.yaml"), "w") as f:
        f.write(RECIPE.format(root=os.path.abspath(root)))
    from rcforge.pipelines.ingest import ingest

    from rcforge.recipe import load_recipe

    ingest(load_recipe(os.path.join(out, "recipe.yaml")), out, progress=False)
    results = {}
    steps = sys.argv[2:] or ["loop", "build-1", "build-2", "dask-1", "dask-2"]
    for what in steps:
        line = subprocess.run([sys.executable, __file__, "--child", what, out], capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
        results[what] = json.loads(line)
    rate = {k: v["dialogues_per_s"] for k, v in results.items()}
    ratios = {"build1_vs_loop": ("build-1", "loop"), "build2_vs_build1": ("build-2", "build-1"),
              "dask2_vs_dask1": ("dask-2", "dask-1"), "dask1_vs_build1": ("dask-1", "build-1")}
    print(json.dumps({**results, **{name: round(rate[a] / rate[b], 2) for name, (a, b) in ratios.items()
                                    if a in rate and b in rate}}, indent=1))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])  # then optionally the steps to run, e.g. dask-1 dask-2
