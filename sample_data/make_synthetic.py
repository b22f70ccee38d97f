"""Writes the synthetic parts of the bundled sample (see SOURCES.md): files in each source's real format whose
real counterparts could not be obtained. Run from the repository root: python sample_data/make_synthetic.py
"""

import json
import pickle
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Flickr30K Entities: an Annotations XML for the real sentence file 4945942737.txt (image 333x500).
# Boxes are hand-placed, not the official ones. Chains: 221796 girl, 221804 hair, 221797 dress,
# 221799 ledge/concrete; 221798 water is a scene, 221800 and 221802 have no box.
(HERE / "flickr30k_entities/Annotations/4945942737.xml").write_text("""<annotation>
\t<filename>4945942737.jpg</filename>
\t<size>
\t\t<width>333</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<object>
\t\t<name>221796</name>
\t\t<bndbox><xmin>112</xmin><ymin>141</ymin><xmax>227</xmax><ymax>392</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>221804</name>
\t\t<bndbox><xmin>140</xmin><ymin>141</ymin><xmax>200</xmax><ymax>215</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>221797</name>
\t\t<bndbox><xmin>120</xmin><ymin>210</ymin><xmax>225</xmax><ymax>380</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>221799</name>
\t\t<bndbox><xmin>1</xmin><ymin>360</ymin><xmax>333</xmax><ymax>500</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>221798</name>
\t\t<scene>1</scene>
\t\t<nobndbox>0</nobndbox>
\t</object>
\t<object>
\t\t<name>221800</name>
\t\t<nobndbox>1</nobndbox>
\t</object>
\t<object>
\t\t<name>221802</name>
\t\t<nobndbox>1</nobndbox>
\t</object>
</annotation>
""")
(HERE / "flickr30k_entities/train.txt").write_text("4945942737\n")

# RefCOCO: the real ref 0 of refs(unc).p (image 581857, ann 1719310) plus a synthetic instances.json holding
# that image and annotation (box hand-placed) and a second, synthetic val ref on COCO image 98304, which the sample's
# exclude section lists (no source of the sample has that image, so nothing is removed; the tests exercise exclusion).
ref0 = json.loads((HERE / "refcoco/ref0.json").read_text())
val_ref = {"sent_ids": [90001], "file_name": "COCO_train2014_000000098304_900001.jpg", "ann_id": 900001,
           "ref_id": 90001, "image_id": 98304, "split": "val",
           "sentences": [{"tokens": ["man", "in", "white"], "raw": "man in white", "sent_id": 90001,
                          "sent": "man in white"}], "category_id": 1}
with open(HERE / "refcoco/refcoco/refs(unc).p", "wb") as f:
    pickle.dump([ref0, val_ref], f, protocol=2)
def _octagon(x, y, w, h):
    """A synthetic mask polygon: the octagon inscribed in a box (the sample's boxes are hand-placed, so are their
    masks; a real COCO polygon is tested in tests/test_masks.py)."""
    return [[x + w * 0.3, y, x + w * 0.7, y, x + w, y + h * 0.3, x + w, y + h * 0.7, x + w * 0.7, y + h,
             x + w * 0.3, y + h, x, y + h * 0.7, x, y + h * 0.3]]


instances = {
    "info": {"description": "rcforge sample (synthetic container)"},
    "images": [{"license": 1, "file_name": "COCO_train2014_000000581857.jpg", "height": 480, "width": 640,
                "id": 581857}],
    "licenses": [],
    "annotations": [
        {"segmentation": _octagon(103.9, 150.2, 138.0, 224.0), "area": 30912.0, "iscrowd": 0, "image_id": 581857,
         "bbox": [103.9, 150.2, 138.0, 224.0], "category_id": 1, "id": 1719310},
        {"segmentation": _octagon(400.0, 200.0, 80.0, 100.0), "area": 8000.0, "iscrowd": 0, "image_id": 581857,
         "bbox": [400.0, 200.0, 80.0, 100.0], "category_id": 1, "id": 1719311},
    ],
    "categories": [{"supercategory": "person", "id": 1, "name": "person"}],
}
(HERE / "refcoco/refcoco/instances.json").write_text(json.dumps(instances))

# PointQA: LocalQA / LookTwiceQA entries in the released layout on the real VG images 1 and 2, built from their
# real objects (points at box centres, as the release does).
objects = {e["image_id"]: e["objects"] for e in json.loads((HERE / "visual_genome/objects.json").read_text())}
attributes = {e["image_id"]: e["attributes"] for e in json.loads((HERE / "visual_genome/attributes.json").read_text())}


def centre(o):
    return {"x": int(round(o["x"] + o["w"] / 2)), "y": int(round(o["y"] + o["h"] / 2))}


by_name = {}
for o in attributes[1]:
    by_name.setdefault(o["names"][0], []).append(o)
local = {}
for name, objs in sorted(by_name.items()):
    colored = [o for o in objs if any(a in ("white", "black", "green", "red", "blue", "gray", "grey", "brown")
                                      for a in o.get("attributes", []))]
    if len(colored) >= 2:
        points = []
        for o in colored[:3]:
            colour = next(a for a in o["attributes"]
                          if a in ("white", "black", "green", "red", "blue", "gray", "grey", "brown"))
            points.append(dict(centre(o), ans=colour))
        local.setdefault("1", []).append({"id": 1, "question": f"What color is the {name}?",
                                          "all_ans": sorted({p["ans"] for p in points}), "all_objs": colored[:3],
                                          "points": points})
(HERE / "pointqa/localqa_dataset.json").write_text(json.dumps(local))

windows = [o for o in objects[1] if o["names"][0] in ("window", "windows")]
cars = [o for o in objects[1] if o["names"][0] == "car"]
looktwice = {"1": []}
for what, objs in (("windows", windows), ("cars", cars)):
    if objs:
        o = objs[0]
        looktwice["1"].append({"id": 1, "img_question": f"How many {what} are there?", "ans": str(len(objs)),
                               "qtype": "howmany", "point": dict(centre(o), ans=str(len(objs))), "bbox": o,
                               "pt_question": "How many of these are there?", "obj_type": what})
(HERE / "pointqa/looktwiceqa_dataset.json").write_text(json.dumps(looktwice))
# LVIS: annotations in the LVIS v1 format on the real COCO image 458752 (bundled for VQAv2): a pitcher. The
# polygons are hand-traced on the image, not LVIS's own (no real LVIS annotation of a bundled image could be
# obtained); the category ids and names are LVIS v1's. "baseball bat" (58) is a verified negative: no bat is in
# the picture. LVIS v1 names images by coco_url; the sample gives the VQAv2 file name instead (LVIS v0.5's field).
TRACED = {
    793: [(275, 163), (288, 158), (297, 166), (300, 176), (312, 177), (321, 186), (325, 196), (320, 206), (318, 222),
          (330, 232), (345, 245), (352, 265), (356, 300), (358, 335), (357, 347), (366, 370), (371, 395), (374, 420),
          (381, 434), (371, 446), (352, 440), (343, 430), (336, 412), (330, 440), (328, 480), (300, 480), (297, 440),
          (295, 400), (292, 360), (290, 352), (265, 353), (249, 342), (246, 322), (240, 300), (230, 282), (232, 268),
          (250, 258), (270, 237), (290, 226), (290, 205), (283, 195), (276, 183), (271, 172)],  # person
    60: [(252, 312), (268, 305), (285, 313), (296, 328), (297, 345), (285, 352), (262, 352), (249, 342),
         (247, 325)],  # baseball glove
    57: [(291.5, 168.0), (289.6, 172.6), (285.0, 174.5), (280.4, 172.6), (278.5, 168.0), (280.4, 163.4),
         (285.0, 161.5), (289.6, 163.4)],  # baseball (in the throwing hand)
    59: [(283, 190), (288, 180), (300, 176), (312, 178), (320, 186), (325, 195), (305, 196), (284, 199)],  # cap
    88: [(312, 342), (356, 337), (357, 346), (313, 352)],  # belt
}
LVIS_NAMES = {57: "baseball", 58: "baseball_bat", 59: "baseball_cap", 60: "baseball_glove", 88: "belt", 793: "person"}


def _traced_annotation(ann_id: int, category_id: int, points: list) -> dict:
    """An LVIS annotation of a traced polygon: its bbox the polygon's extent, its area the polygon's (shoelace)."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    area = abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))) / 2
    return {"id": ann_id, "image_id": 458752, "category_id": category_id,
            "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "area": round(area, 1),
            "segmentation": [[v for point in points for v in point]]}


lvis = {
    "info": {"description": "rcforge sample: LVIS v1 format, hand-traced polygons on COCO image 458752"},
    "licenses": [],
    "annotations": [_traced_annotation(1 + k, cat, points) for k, (cat, points) in enumerate(TRACED.items())],
    "images": [{"id": 458752, "width": 640, "height": 480, "file_name": "COCO_train2014_000000458752.jpg",
                "coco_url": "http://images.cocodataset.org/train2017/000000458752.jpg",
                "not_exhaustive_category_ids": [], "neg_category_ids": [58]}],
    "categories": [{"id": cid, "name": name, "synonyms": [name]} for cid, name in sorted(LVIS_NAMES.items())],
}
(HERE / "lvis").mkdir(exist_ok=True)
(HERE / "lvis/lvis_v1_sample.json").write_text(json.dumps(lvis, indent=1))
print("wrote the synthetic sample files")
