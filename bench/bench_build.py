"""Rendering throughput: `rcforge build` against a plain Python loop running the same task code, and that loop
against an independent floor that uses no project code.

    python bench/gen_vg.py --images 10000 --out bench/data/vg10k
    python bench/bench_build.py bench/data/vg10k                 # every step
    python bench/bench_build.py bench/data/vg10k floor loop build-1 build-2

Steps (each in its own process, on image records ingested once beforehand; seconds exclude imports):
- "floor": no project code: read the image-record Parquet (pyarrow), render ``per_image`` dialogues per image
  with compiled Jinja templates (relation, grounding, counting, detection) and Pink-format boxes, write zstd
  Parquet; "floor-gc" is the same with the cyclic collector paused, as rcforge pauses it (`rcforge.core.bulk`);
- "loop": read the image-record parts, call `Renderer.dialogues`, write the dialogues to one Parquet file;
  "loop-gc" is the same with the collector paused around each record's render, as the build pauses it;
- "build-1": `rcforge build` reusing that ingest, one in-process worker (FnApiRunner); its seconds are the
  render stage's (the manifest's ``build.seconds``: pipeline start to the last shard), the process's are shown too;
- "build-2": the same with two worker processes (Beam multi_processing);
- "dask-1", "dask-2": the same on a local Dask cluster (`--runner DaskRunner`) of one and of two worker
  processes, started before the clock (as a running cluster would be).
Targets: build-1 >= 1.0x the loop's dialogues/s (and the loop-gc's); build-2 >= 1.6x build-1; the loop >= 0.8x
the floor (loop-gc against floor-gc);
dask-2 >= 1.6x dask-1.
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


def _recipe(out: str) -> str:
    """The bench recipe, beside OUT (an OUT holds only rcforge's own files)."""
    return os.path.join(os.path.dirname(out), "recipe.yaml")


FLOOR_TEMPLATES = {
    "relation": (["What is the relationship between {{ s }} and {{ o }}?", "How is {{ s }} related to {{ o }}?",
                  "Describe the relation of {{ s }} to {{ o }}."],
                 ["{{ p }}", "{{ s_text }} is {{ p }} {{ o_text }}."]),
    "grounding": (["Where is {{ e }}? Give its box.", "Locate the region described as \"{{ e }}\"."],
                  ["{{ box }}", "It is at {{ box }}."]),
    "counting": (["How many {{ name }} are there?", "Count the {{ name }} in the image."],
                 ["{{ n }}", "There are {{ n }}."]),
    "detection": (["Find every {{ name }} in the image.", "Where are all the {{ name }}?"],
                  ["{% for b in boxes %}{{ b }}{% if not loop.last %}, {% endif %}{% endfor %}"]),
}


def _floor(out: str, paused: bool) -> tuple[int, float]:
    """The independent floor: pyarrow + Jinja + random only."""
    import gc
    import glob
    import random
    import zlib

    import jinja2
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    if paused:
        gc.disable()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    templates = {task: ([env.from_string(q) for q in qs], [env.from_string(a) for a in ans])
                 for task, (qs, ans) in FLOOR_TEMPLATES.items()}

    def box(b, w, h):
        return "[%.3f,%.3f,%.3f,%.3f]" % (b[0] / w, b[1] / h, b[2] / w, b[3] / h)

    rows = []
    for part in sorted(glob.glob(os.path.join(out, "images", "*", "*.parquet"))):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=512):
            for record in batch.to_pylist():
                w, h, objects = record["width"], record["height"], record["objects"]
                if not objects:
                    continue
                by_id = {o["id"]: o for o in objects}
                rng = random.Random(zlib.crc32(record["key"].encode()))
                for k in range(4):
                    task = rng.choice(list(templates))
                    if task == "relation" and not record["relations"]:
                        task = "grounding"
                    qs, ans = templates[task]
                    o = rng.choice(objects)
                    name = o["names"][0] if o["names"] else "object"
                    same = [x["box"] for x in objects if x["names"][:1] == o["names"][:1]]
                    boxes = [o["box"]]
                    if task == "relation":
                        r = rng.choice(record["relations"])
                        s_, o_ = by_id.get(r["subject_id"]), by_id.get(r["object_id"])
                        if s_ and o_:
                            boxes = [s_["box"], o_["box"]]
                            v = {"s": box(s_["box"], w, h), "o": box(o_["box"], w, h), "p": r["predicate"],
                                 "s_text": (s_["names"] or ["it"])[0], "o_text": (o_["names"] or ["it"])[0]}
                        else:
                            v = {"s": name, "o": name, "p": "near", "s_text": name, "o_text": name}
                    elif task == "grounding":
                        v = {"e": name, "box": box(o["box"], w, h)}
                    elif task == "counting":
                        v = {"name": name, "n": len(same)}
                    else:
                        boxes = same
                        v = {"name": name, "boxes": [box(b, w, h) for b in same]}
                    question, answer = rng.choice(qs).render(v), rng.choice(ans).render(v)
                    rows.append({"id": f"{record['key']}/{k}", "key": record["key"], "source": record["source"],
                                 "image": record["image"], "task": task,
                                 "conversations": [{"from": "human", "value": "<image>\n" + question},
                                                   {"from": "gpt", "value": answer}],
                                 "boxes": [[b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in boxes]})
    rows.sort(key=lambda r: r["id"])
    pq.write_table(pa.Table.from_pylist(rows), os.path.join(os.path.dirname(out), "floor.parquet"),
                   compression="zstd")
    return len(rows), time.perf_counter() - started


def read_part(path: str):
    """Image records of one Parquet part, batch by batch (as the build reads a row group)."""
    import pyarrow.parquet as pq

    from rcforge.core import bulk

    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=512):
        with bulk.gc_paused():
            records = batch.to_pylist()
        yield from records


def _loop(out: str, paused: bool) -> tuple[int, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rcforge import schemas
    from rcforge.core import bulk
    from rcforge.recipe.tree import load_recipe
    from rcforge.render.renderer import Renderer

    started = time.perf_counter()
    recipe = load_recipe(_recipe(out))
    renderer = Renderer(recipe.render, recipe.seed)
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    rows = []
    for entry in manifest["sources"].values():
        for part in entry["parts"]:
            for record in read_part(os.path.join(out, part)):
                if paused:  # as the build renders a row group (`rcforge.core.bulk`)
                    with bulk.gc_paused():
                        rows.extend(renderer.dialogues(record))
                else:
                    rows.extend(renderer.dialogues(record))
    rows.sort(key=lambda r: r["id"])
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.DIALOGUE),
                   os.path.join(os.path.dirname(out), "loop.parquet"), compression="zstd")
    return len(rows), time.perf_counter() - started


def _build(out: str, workers: int) -> tuple[int, float]:
    from rcforge.pipelines.build import build
    from rcforge.recipe.tree import load_recipe

    args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"] if workers > 1 else []
    manifest = build(load_recipe(_recipe(out)), out, beam_args=args, progress=False)
    assert manifest.build.reused_ingest
    return manifest.build.dialogues, manifest.build.seconds


def _dask(out: str, workers: int) -> tuple[int, float]:
    from dask.distributed import LocalCluster

    from rcforge.pipelines import runners
    from rcforge.pipelines.build import build
    from rcforge.recipe.tree import load_recipe

    recipe = load_recipe(_recipe(out))
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
    elif what.startswith("floor"):
        n, seconds = _floor(out, paused=what == "floor-gc")
    elif what.startswith("loop"):
        n, seconds = _loop(out, paused=what == "loop-gc")
    else:
        n, seconds = _build(out, int(what.split("-")[1]))
    print(json.dumps({"what": what, "dialogues": n, "seconds": round(seconds, 2),
                      "process_seconds": round(time.perf_counter() - started, 2),
                      "dialogues_per_s": round(n / seconds)}))


def main(root: str) -> None:
    work = tempfile.mkdtemp(prefix="rcforge-bench-build-")
    out = os.path.join(work, "out")
    with open(_recipe(out), "w") as f:
        f.write(RECIPE.format(root=os.path.abspath(root)))
    from rcforge.pipelines.ingest import ingest
    from rcforge.recipe.tree import load_recipe

    ingest(load_recipe(_recipe(out)), out, progress=False)
    results = {}
    steps = sys.argv[2:] or ["floor", "floor-gc", "loop", "loop-gc", "build-1", "build-2", "dask-1", "dask-2"]
    for what in steps:
        line = subprocess.run([sys.executable, __file__, "--child", what, out], capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
        results[what] = json.loads(line)
    rate = {k: v["dialogues_per_s"] for k, v in results.items()}
    ratios = {"build1_vs_loop": ("build-1", "loop"), "build1_vs_loop_gc": ("build-1", "loop-gc"),
              "build2_vs_build1": ("build-2", "build-1"),
              "loop_vs_floor": ("loop", "floor"), "loop_gc_vs_floor_gc": ("loop-gc", "floor-gc"),
              "dask2_vs_dask1": ("dask-2", "dask-1"), "dask1_vs_build1": ("dask-1", "build-1")}
    print(json.dumps({**results, **{name: round(rate[a] / rate[b], 2) for name, (a, b) in ratios.items()
                                    if a in rate and b in rate}}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])  # then optionally the steps to run, e.g. dask-1 dask-2
