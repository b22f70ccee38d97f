"""Rendering throughput: `rcforge build` against a plain Python loop running the same task code.

    python bench/gen_vg.py --images 20000 --out bench/data/vg20k
    python bench/bench_build.py bench/data/vg20k

Steps (each timed in its own process, on image records ingested once beforehand):
- "loop": read the image-record parts, call the same `Renderer.dialogues`, write the dialogues to one Parquet
  file with pyarrow: the floor the issue sets;
- "build-1": `rcforge build` reusing that ingest, one in-process worker (FnApiRunner);
- "build-2": the same with two worker processes (Beam multi_processing).
Targets: build-1 >= 0.6x the loop's dialogues/s; build-2 >= 1.6x build-1.
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
  visual_genome: {{root: {root}, images: {root}}}
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


def child(what: str, out: str) -> None:
    started = time.perf_counter()
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
    for what in ("loop", "build-1", "build-2"):
        line = subprocess.run([sys.executable, __file__, "--child", what, out], capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
        results[what] = json.loads(line)
    loop, one, two = (results[k]["dialogues_per_s"] for k in ("loop", "build-1", "build-2"))
    print(json.dumps({**results, "build1_vs_loop": round(one / loop, 2), "build2_vs_build1": round(two / one, 2)},
                     indent=1))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])
