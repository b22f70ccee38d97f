"""Ingest throughput and memory against the raw streaming-parse rate of the same files.

    python bench/bench_ingest.py vg   bench/data/vg
    python bench/bench_ingest.py o365 bench/data/o365.json [memory|stream] [MASK_PROCESSES]

Each measurement runs in its own process so that peak RSS (ru_maxrss) belongs to it alone:
- "parse": ijson (yajl2_c) streams every item of every input file and does nothing else (the floor);
- "ingest": `rcforge.pipelines.ingest.ingest_source` reads, checks, joins and writes the Parquet records.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _parse(kind, path):
    import ijson

    n = 0
    if kind == "vg":
        for name in ("image_data", "objects", "relationships", "region_descriptions", "attributes"):
            with open(os.path.join(path, f"{name}.json"), "rb") as f:
                for _ in ijson.items(f, "item", use_float=True, buf_size=1 << 16):
                    n += 1
    else:
        for prefix in ("categories.item", "images.item", "annotations.item"):
            with open(path, "rb") as f:
                for _ in ijson.items(f, prefix, use_float=True, buf_size=1 << 16):
                    n += 1
    return n


def _ingest(kind, path, mode="stream", mask_processes="-1"):
    from rcforge.core.config import build_config
    from rcforge.core.images import ImageChecks
    from rcforge.pipelines.ingest import IngestSettings, ingest_source
    from rcforge.readers import get
    from rcforge.recipe.tree import IngestPolicy

    out = tempfile.mkdtemp(prefix="rcforge-bench-")
    if kind == "vg":
        name, options = "visual_genome", {"root": path, "images": path}
    else:
        name, options = "objects365", {"annotations": path, "images": os.path.dirname(path), "mode": mode,
                                       "mask_processes": int(mask_processes)}
    config = build_config(get(name).config_class, options, f"sources.{name}")
    # the generated data has no image files: this measures parsing and writing (bench_images.py measures checks)
    entry = ingest_source(name, config, IngestSettings(out=out, progress=False,
                                                       policy=IngestPolicy(max_bad_fraction=1.0)),
                          checks=ImageChecks(verify="off"))
    return entry["records"]


def child(what, kind, path, mode="stream", mask_processes="-1"):
    import gc

    gc.disable()  # both measurements without the cyclic collector (ingest turns it off itself)
    started = time.perf_counter()
    n = _parse(kind, path) if what == "parse" else _ingest(kind, path, mode, mask_processes)
    seconds = time.perf_counter() - started
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"what": what, "items": n, "seconds": round(seconds, 2),
                      "cpu_seconds": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 2),
                      "peak_rss_mb": round(me.ru_maxrss / 1024),
                      # parser processes (VG): the largest one's peak; they run side by side, one per file
                      "largest_child_peak_rss_mb": round(kids.ru_maxrss / 1024)}))


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields["PPid"].strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def main():
    kind, path = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "stream"  # the COCO-format reading path
    mask_processes = sys.argv[4] if len(sys.argv) > 4 else "-1"  # -1: the reader's default (auto)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) if os.path.isdir(path) \
        else os.path.getsize(path)
    results = {}
    for what in ("parse", "ingest"):
        proc = subprocess.Popen([sys.executable, __file__, "--child", what, kind, path, mode,
                                 mask_processes], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        peak = 0
        while proc.poll() is None:  # the whole process tree (VG parser processes included), every 50 ms
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.05)
        out = proc.stdout.read().strip().splitlines()[-1]
        results[what] = json.loads(out)
        results[what]["peak_tree_rss_mb"] = round(peak / 1024)
    ratio = results["parse"]["seconds"] / results["ingest"]["seconds"]
    print(json.dumps({"input": path, "mode": mode, "mask_processes": mask_processes,
                      "input_mb": round(size / 2**20), **results,
                      "parse_mb_s": round(size / 2**20 / results["parse"]["seconds"], 1),
                      "ingest_mb_s": round(size / 2**20 / results["ingest"]["seconds"], 1),
                      "ingest_vs_parse": round(ratio, 2)}, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(*sys.argv[2:7])
    else:
        main()
