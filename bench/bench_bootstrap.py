"""Bootstrap throughput: the pipeline's handlers, batched as RunInference batches them, against a per-box
batch-1 loop (Pink's pattern).

    python bench/bench_bootstrap.py --size base --boxes 16 --device cpu      # or --device cuda, --size large

Builds a Florence-2 of base (or large) size with random weights from a config (no download; a small in-process
tokenizer, so only the embedding is smaller than the real one), 768x768 inputs (577 image tokens), forces
``--tokens`` new tokens per reply (realistic description/grounding lengths), and times both ways on the same
synthetic images and boxes. Reports boxes/s and the ratio (target on a GPU: >= 10x).
"""

import argparse
import json
import os
import tempfile
import time

from rcforge.bootstrap.florence2_handlers import Florence2


def build_model(folder: str, size: str) -> str:
    import torch
    from transformers import (
        BartConfig,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
    )

    from rcforge.bootstrap.tiny import tiny_florence2  # the tokenizer and processor recipe of the tests

    tiny_florence2(folder)
    processor = Florence2Processor.from_pretrained(folder)
    tok = processor.tokenizer
    text = dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072) if size == "base" else \
        dict(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
             decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096)
    # DaViT: the config's defaults are Florence-2-base's tower; large doubles every stage's width
    vision = {} if size == "base" else dict(embed_dim=[256, 512, 1024, 2048], num_heads=[8, 16, 32, 64],
                                            num_groups=[8, 16, 32, 64])
    config = Florence2Config(
        vision_config=Florence2VisionConfig(projection_dim=text["d_model"], **vision),
        text_config=BartConfig(vocab_size=len(tok), max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                               decoder_start_token_id=tok.eos_token_id, **text),
        image_token_id=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768},
                                do_center_crop=False, image_seq_length=577)
    Florence2Processor(image_processor=images, tokenizer=tok, post_processor_config={
        "phrase_grounding": {"banned_grounding_tokens": []}, "pure_text": {}}).save_pretrained(folder)
    return folder


def requests(root: str, n_boxes: int) -> list[dict]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    per_image = 8
    for i in range((n_boxes + per_image - 1) // per_image):
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(os.path.join(root, f"{i}.jpg"))
        for j in range(min(per_image, n_boxes - i * per_image)):
            x, y = 40 * j, 30 * j
            out.append({"key": f"bench/{i}", "source": "bench", "image": f"{i}.jpg", "width": 640, "height": 480,
                        "object_id": j, "category": "thing", "box": [x, y, x + 200.0, y + 150.0], "sample": 0,
                        "others": []})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=["base", "large"], default="base")
    ap.add_argument("--boxes", type=int, default=16)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[16],
                    help="one or more batch sizes for the batched handlers (the pipeline uses the first)")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--loop-boxes", type=int, default=None,
                    help="time the per-box loop on the first N boxes only (a rate; the loop is the slow part)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pipeline", action="store_true",
                    help="also time the whole Beam pipeline (rcforge's ingest output -> candidates -> pairs)")
    args = ap.parse_args()
    from apache_beam.ml.inference.base import PredictionResult  # noqa: F401  (Beam is imported as the pipeline does)

    from rcforge.bootstrap.florence2_handlers import Florence2
    from rcforge.bootstrap.handlers import Decoding, stage_handlers

    work = tempfile.mkdtemp(prefix="rcforge-bench-bootstrap-")
    model_dir = build_model(os.path.join(work, "model"), args.size)
    reqs = requests(work, args.boxes)
    roots = {"bench": work}
    kw = dict(image_roots=roots, device=args.device)
    tokens = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens)

    # per-box, batch-1 loop (Pink's pattern): describe then ground, one box at a time
    d1, g1 = stage_handlers(Florence2, model_dir, decoding=Decoding(batch_size=1, **tokens), **kw)
    model = d1.load_model()
    (load,) = d1.get_preprocess_fns()  # the pipeline's preprocess step: (request, image)
    for handler in (d1, g1):  # warm-up, untimed: the first call on a GPU loads kernels
        handler.run_inference([load({**reqs[0], "description": "a thing"})], model)
    synchronize(args.device)
    started = time.perf_counter()
    looped = reqs[:args.loop_boxes]
    for r in looped:
        (res,) = d1.run_inference([load(r)], model)
        (res,) = g1.run_inference([load({**r, "description": d1.parse(res.inference, r) or "a thing"})], model)
    synchronize(args.device)
    loop = (time.perf_counter() - started) * len(reqs) / len(looped)  # the loop's time for every box

    result = {"size": args.size, "device": args.device, **environment(args.device), "boxes": len(reqs),
              "tokens": args.tokens, "loop_boxes": len(looped), "loop_boxes_per_s": round(len(reqs) / loop, 3)}
    for size in args.batch_size:  # the pipeline's handlers, batched
        seconds = batched_run(model_dir, model, load, reqs, size, tokens, kw)
        result[f"batched_{size}_boxes_per_s"] = round(len(reqs) / seconds, 3)
        result[f"batched_{size}_speedup"] = round(loop / seconds, 2)
        print(json.dumps(result), flush=True)  # each figure as soon as it exists: a later one may not
    if args.pipeline:
        boxes, seconds = pipeline_run(work, model_dir, reqs, args)
        result.update({"pipeline_batch_size": args.batch_size[0], "pipeline_boxes": boxes,
                       "pipeline_boxes_per_s": round(boxes / seconds, 3),
                       "pipeline_speedup": round((boxes / seconds) / (len(reqs) / loop), 2)})
    if args.device.startswith("cuda"):
        import torch

        result["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result, indent=1))


def batched_run(model_dir: str, model, load, reqs: list[dict], batch_size: int, tokens: dict, kw: dict) -> float:
    """Seconds for the pipeline's two handlers over ``reqs`` in batches of ``batch_size`` (the model loaded once)."""
    from rcforge.bootstrap.florence2_handlers import Florence2
    from rcforge.bootstrap.handlers import Decoding, stage_handlers

    db, gb = stage_handlers(Florence2, model_dir, decoding=Decoding(batch_size=batch_size, **tokens), **kw)
    synchronize(kw["device"])
    started = time.perf_counter()
    for i in range(0, len(reqs), batch_size):
        chunk = reqs[i:i + batch_size]
        described = db.run_inference([load(r) for r in chunk], model)
        gb.run_inference([load({**res.example, "description": db.parse(res.inference, res.example) or "a thing"})
                          for res in described], model)
    synchronize(kw["device"])
    return time.perf_counter() - started


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def environment(device: str) -> dict:
    """What the figures were measured on."""
    import torch
    import transformers

    found = {"torch": torch.__version__, "transformers": transformers.__version__}
    if device.startswith("cuda"):
        found.update(gpu=torch.cuda.get_device_name(), dtype="float16")
    return found


class BenchFlorence2(Florence2):
    """A random model's descriptions rarely parse, and the pipeline does not ground a description that does not
    parse: like the loop, ground "a thing" instead, so every box costs both stages. At module level: on a GPU the
    handlers send their adapter to the process that holds the shared model, and a local class does not pickle."""

    def parse(self, raw, request):
        parsed = super().parse(raw, request)
        return "a thing" if parsed is None and self.stage == "describe" else parsed


def pipeline_run(work: str, model_dir: str, reqs: list[dict], args) -> tuple[int, float]:
    """The Beam pipeline on the same images and boxes, from an ingested Objects365-format file."""
    from rcforge.bootstrap.handlers import Decoding, stage_handlers
    from rcforge.bootstrap.options import BootstrapOptions
    from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap
    from rcforge.pipelines.ingest import ingest
    from rcforge.recipe.tree import recipe_from_mapping

    images = sorted({r["image"] for r in reqs})
    coco = {"images": [{"id": i, "file_name": name, "width": 640, "height": 480} for i, name in enumerate(images)],
            "annotations": [{"id": n, "image_id": images.index(r["image"]), "category_id": 1, "iscrowd": 0,
                             "bbox": [r["box"][0], r["box"][1], r["box"][2] - r["box"][0], r["box"][3] - r["box"][1]]}
                            for n, r in enumerate(reqs)],
            "categories": [{"id": 1, "name": "thing"}]}
    with open(os.path.join(work, "o365.json"), "w") as f:
        json.dump(coco, f)
    out = os.path.join(work, "out")
    recipe = recipe_from_mapping({"sources": {"objects365": {"annotations": os.path.join(work, "o365.json"),
                                                             "images": work}}})
    ingest(recipe, out, progress=False)
    decoding = Decoding(max_new_tokens=args.tokens, min_new_tokens=args.tokens, batch_size=args.batch_size[0])
    settings = BootstrapSettings(BootstrapOptions(min_area=0))
    started = time.perf_counter()
    handlers = stage_handlers(BenchFlorence2, model_dir, image_roots={"objects365": work}, device=args.device,
                              decoding=decoding)
    summary = run_bootstrap(out, *handlers, settings)
    seconds = time.perf_counter() - started
    assert summary["candidates"] == len(reqs)
    failed = dead_letters(out)
    if failed:  # a batch that failed costs no model time: a figure over failed batches would be meaningless
        raise SystemExit(f"bench: {len(failed)} of {len(reqs)} boxes failed in the pipeline, e.g. {failed[0]}")
    return summary["candidates"], seconds


def dead_letters(out: str) -> list[str]:
    """The raw replies of candidates that a stage could not run (Beam's dead-letter output)."""
    import glob

    import pyarrow.parquet as pq

    failed = []
    for path in sorted(glob.glob(os.path.join(out, "bootstrap", "candidates", "*.parquet"))):
        table = pq.read_table(path, columns=["raw_describe", "raw_ground"])
        failed += [raw for column in table.columns for raw in column.to_pylist()
                   if raw is not None and raw.startswith("<failed>")]
    return failed


if __name__ == "__main__":
    main()
