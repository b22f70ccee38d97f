"""Generate Visual Genome-scale input in the real v1.2 schema (image_data, objects, relationships,
region_descriptions, attributes), streamed to disk so that any size fits in memory.

    python bench/gen_vg.py --images 108077 --out bench/data/vg

Defaults follow VG 1.2: ~35 objects, ~21 relationships and ~50 region descriptions per image; relationship
endpoints carry their own copy of the object, as in the real file; a few predicates in upper case.
"""

import argparse
import json
import os
import random

NAMES = ["man", "shirt", "tree", "window", "building", "sign", "car", "table", "plate", "person", "hand",
         "head", "wall", "grass", "sky", "cloud", "street", "pole", "light", "chair", "door", "woman", "leg"]
PREDICATES = ["on", "has", "wearing", "of", "in", "near", "ON", "behind", "holding", "with", "above", "sitting on"]
ATTRS = ["white", "black", "blue", "green", "red", "tall", "wooden", "metal", "small", "large"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=108077)
    ap.add_argument("--objects", type=int, default=35)
    ap.add_argument("--relationships", type=int, default=21)
    ap.add_argument("--regions", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    files = {n: open(os.path.join(args.out, f"{n}.json"), "w") for n in
             ("image_data", "objects", "relationships", "region_descriptions", "attributes")}
    for f in files.values():
        f.write("[")
    oid = rid = gid = 1
    for i in range(1, args.images + 1):
        w, h = rng.choice([(800, 600), (500, 333), (640, 480), (800, 533)])
        sep = ", " if i > 1 else ""
        files["image_data"].write(sep + json.dumps({"width": w, "url": f"https://cs.stanford.edu/VG_100K/{i}.jpg",
                                                    "height": h, "image_id": i, "coco_id": None if i % 2 else i,
                                                    "flickr_id": None}))
        objs, atts = [], []
        for _ in range(max(1, int(rng.gauss(args.objects, 8)))):
            x, y = rng.randint(0, w - 20), rng.randint(0, h - 20)
            o = {"synsets": ["thing.n.01"], "h": rng.randint(5, h - y), "object_id": oid,
                 "names": [rng.choice(NAMES)], "w": rng.randint(5, w - x), "y": y, "x": x}
            objs.append(o)
            a = dict(o)
            if rng.random() < 0.6:
                a["attributes"] = rng.sample(ATTRS, rng.randint(1, 2))
            atts.append(a)
            oid += 1
        rels = []
        for _ in range(max(0, int(rng.gauss(args.relationships, 6)))):
            s, o = rng.choice(objs), rng.choice(objs)
            rels.append({"predicate": rng.choice(PREDICATES), "object": {**o, "name": o["names"][0]},
                         "relationship_id": rid, "synsets": ["on.r.01"], "subject": {**s, "name": s["names"][0]}})
            rid += 1
        regs = []
        for _ in range(max(1, int(rng.gauss(args.regions, 10)))):
            x, y = rng.randint(0, w - 20), rng.randint(0, h - 20)
            regs.append({"region_id": gid, "width": rng.randint(5, w - x), "height": rng.randint(5, h - y),
                         "image_id": i, "phrase": f"a {rng.choice(ATTRS)} {rng.choice(NAMES)} next to the "
                                                  f"{rng.choice(NAMES)}", "y": y, "x": x})
            gid += 1
        files["objects"].write(sep + json.dumps({"image_id": i, "objects": objs}))
        files["attributes"].write(sep + json.dumps({"image_id": i, "attributes": atts}))
        files["relationships"].write(sep + json.dumps({"relationships": rels, "image_id": i}))
        files["region_descriptions"].write(sep + json.dumps({"regions": regs, "id": i}))
    for f in files.values():
        f.write("]")
        f.close()


if __name__ == "__main__":
    main()
