"""Ingest of one source by two versions of rcforge, in alternating runs: wall seconds, CPU seconds, peak RSS,
and whether they wrote the same records (a digest of every row) and the same ledger.

    git worktree add /tmp/before COMMIT && pip install -q --no-deps --target /tmp/before-site /tmp/before
    python bench/gen_vg.py --images 20000 --out bench/data/vg20k
    python bench/compare_ingest.py /tmp/before-site vg bench/data/vg20k columnar --runs 3
    python bench/compare_ingest.py /tmp/before-site o365 bench/data/coco_nomasks.json memory

"before" runs from the folder given (the editable install of this checkout is hidden from it); "after" is this
checkout. Each run is its own process, so peak RSS (ru_maxrss, parser processes' included in CPU time) is its own.
"""

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def child(which: str, site: str, kind: str, path: str, mode: str) -> None:
    import gc

    if which == "before":  # hide the editable install of this checkout, so `rcforge` resolves to ``site``
        sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                         and "__editable__" not in repr(f)]
        sys.path.insert(0, site)
    try:
        from rcforge.core.config import build_config
        from rcforge.core.images import ImageChecks
        from rcforge.recipe.tree import IngestPolicy
    except ImportError:  # the layout before rcforge/ had its layer folders
        from rcforge.config import build_config
        from rcforge.images import ImageChecks
        from rcforge.recipe import IngestPolicy
    import pyarrow.parquet as pq

    from rcforge.pipelines.ingest import IngestSettings, ingest_source
    from rcforge.readers import get

    if kind == "vg":
        name, options = "visual_genome", {"root": path, "images": path, "mode": mode}
    else:
        name, options = "objects365", {"annotations": path, "images": os.path.dirname(path), "mode": mode}
    config = build_config(get(name).config_class, options, f"sources.{name}")
    out = tempfile.mkdtemp(prefix="rcforge-compare-")
    gc.disable()
    started = time.perf_counter()
    entry = ingest_source(name, config, IngestSettings(out=out, progress=False,
                                                       policy=IngestPolicy(max_bad_fraction=1.0)),
                          checks=ImageChecks(verify="off"))
    seconds = time.perf_counter() - started
    digest = hashlib.sha256()
    for part in sorted(os.listdir(os.path.join(out, "images", name))):
        for row in pq.read_table(os.path.join(out, "images", name, part)).to_pylist():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print(json.dumps({"which": which, "seconds": round(seconds, 2),
                      "cpu_seconds": round(sum(u.ru_utime + u.ru_stime for u in usage), 2),
                      "peak_rss_mb": round(usage[0].ru_maxrss / 1024), "records": entry["records"],
                      "records_digest": digest.hexdigest()[:16],
                      "ledger_digest": hashlib.sha256(json.dumps(entry["ledger"], sort_keys=True).encode())
                      .hexdigest()[:16]}))


def main(site: str, kind: str, path: str, mode: str = "auto", runs: int = 3) -> None:
    results = {"before": [], "after": []}
    for _ in range(runs):
        for which in ("before", "after"):
            out = subprocess.run([sys.executable, __file__, "--child", which, site, kind, path, mode],
                                 capture_output=True, text=True, check=True).stdout
            results[which].append(json.loads(out.strip().splitlines()[-1]))
            print(out.strip().splitlines()[-1], flush=True)
    summary = {which: {k: statistics.mean(r[k] for r in rs) for k in ("seconds", "cpu_seconds", "peak_rss_mb")}
               for which, rs in results.items()}
    same = {k: len({r[k] for rs in results.values() for r in rs}) == 1 for k in ("records_digest", "ledger_digest")}
    print(json.dumps({"kind": kind, "mode": mode, "runs": runs, **summary,
                      "speed_after_vs_before": round(summary["before"]["seconds"] / summary["after"]["seconds"], 3),
                      "same_records": same["records_digest"], "same_ledger": same["ledger_digest"]}, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(*sys.argv[2:7])
    else:
        args = sys.argv[1:]
        runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
        args = [a for i, a in enumerate(args) if a != "--runs" and (i == 0 or args[i - 1] != "--runs")]
        main(*args, runs=runs)
