"""Generate Objects365-scale input: one COCO-format JSON (images, then annotations not grouped by image).

    python bench/gen_o365.py --images 1742292 --boxes 25000000 --out bench/data/o365.json
    python bench/gen_o365.py --images 20000 --boxes 300000 --masks --out bench/data/coco_masks.json

``--masks`` gives every annotation a COCO polygon segmentation (an octagon inscribed in its box, as LVIS and
COCO instances carry), for the mask ingest bench (the same seed without it is the same file but the masks).

Written as a stream, so the generator itself needs little memory.
"""

import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1742292)
    ap.add_argument("--boxes", type=int, default=25_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--masks", action="store_true", help="a polygon segmentation on every annotation")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w") as f:
        f.write('{"images": [')
        for i in range(1, args.images + 1):
            f.write((", " if i > 1 else "") + json.dumps(
                {"height": 512, "id": i, "license": 5, "width": 769,
                 "file_name": f"images/v2/patch{i % 50}/objects365_v2_{i:08d}.jpg", "url": ""}))
        f.write('], "annotations": [')
        for a in range(1, args.boxes + 1):
            x, y = rng.uniform(0, 700), rng.uniform(0, 480)
            bw, bh = rng.uniform(1, 200), rng.uniform(1, 150)
            ann = {"id": a, "iscrowd": int(rng.random() < 0.01), "isfake": 0, "area": bw * bh, "isreflected": 0,
                   "bbox": [x, y, bw, bh], "image_id": rng.randint(1, args.images),
                   "category_id": rng.randint(1, 365)}
            if args.masks:
                ann["segmentation"] = [[round(v, 2) for v in (
                    x + bw * 0.3, y, x + bw * 0.7, y, x + bw, y + bh * 0.3, x + bw, y + bh * 0.7, x + bw * 0.7,
                    y + bh, x + bw * 0.3, y + bh, x, y + bh * 0.7, x, y + bh * 0.3)]]
            f.write((", " if a > 1 else "") + json.dumps(ann))
        f.write('], "categories": [' + ", ".join(json.dumps({"name": f"cat{c}", "id": c}) for c in range(1, 366))
                + '], "licenses": []}')


if __name__ == "__main__":
    main()
