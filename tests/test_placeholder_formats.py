"""The placeholder formats read back by their families' own loader code: Shikra's data form (`shikra_jsonl`) and
NExT-Chat's (`nextchat`). The text holds `<boxes>` / `<at> <boxes>` / `<points>`; the item carries the boxes in
pixels and one list of box indices per placeholder. The functions below are copied from the families'
repositories (commit and lines cited) and run unchanged, but for their registry decorators and imports.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from pycocotools import mask as maskutil

from rcforge import cli

Box = List[float]
Boxes = List[Box]
BoxesSeq = List[Boxes]


# -- shikras/shikra@ff79a4ced85d21739e1a4c5cec9e1e8f896b962c mllm/dataset/utils/transform.py, lines 30-49 ----------
def norm_box_xyxy(box, *, w, h):
    x1, y1, x2, y2 = box

    # Calculate the normalized coordinates with min-max clamping
    norm_x1 = max(0.0, min(x1 / w, 1.0))
    norm_y1 = max(0.0, min(y1 / h, 1.0))
    norm_x2 = max(0.0, min(x2 / w, 1.0))
    norm_y2 = max(0.0, min(y2 / h, 1.0))

    # Return the normalized box coordinates
    normalized_box = (round(norm_x1, 3), round(norm_y1, 3), round(norm_x2, 3), round(norm_y2, 3))
    return normalized_box


def norm_point_xyxy(point, *, w, h):
    x, y = point
    norm_x = max(0.0, min(x / w, 1.0))
    norm_y = max(0.0, min(y / h, 1.0))
    point = norm_x, norm_y
    return point


# -- shikras/shikra@ff79a4c mllm/dataset/process_function/box_process_function.py, lines 98-117 (map_obj),
# -- 120-149 (BoxFormatter), 160-200 (PlainBoxFormatter) ------------------------------------------------------------
def map_obj(boxes_value: List[List[float]], boxes_seq: List[List[int]]) -> List[List[List[float]]]:
    try:
        ret = []
        for boxes in boxes_seq:
            boxes_ret = []
            for box_index in boxes:
                if isinstance(box_index, (list, tuple)):
                    boxes_ret.append(boxes_value[box_index[0]][box_index[1]])
                else:
                    boxes_ret.append(boxes_value[box_index])
            ret.append(boxes_ret)
        return ret
    except:  # noqa: E722  (as in the family's code)
        raise SystemExit(f"error: map obj {boxes_value} {boxes_seq}")


class BoxFormatter:
    def __init__(self, bboxes_token="<boxes>", points_token="<points>"):
        self.bboxes_token = bboxes_token
        self.points_token = points_token
        # normally the bboxes_token_pat is the same as bboxes_token if u not use some weird token
        self.bboxes_token_pat = re.compile(bboxes_token)
        self.points_token_pat = re.compile(points_token)

    def __call__(self, sentence: str, bboxes_seq: BoxesSeq) -> str:
        all_box = self.bboxes_token_pat.findall(sentence)
        assert len(all_box) == len(bboxes_seq), f"not match. sentence: {sentence}. boxes:{bboxes_seq}"
        if len(all_box) == 0:
            return sentence
        bboxes_strs = [self.format_box(bboxes) for bboxes in bboxes_seq]
        converted = sentence.replace(self.bboxes_token, '{}').format(*bboxes_strs)
        return converted

    def call_on_point(self, sentence: str, points_seq: BoxesSeq) -> str:
        all_box = self.points_token_pat.findall(sentence)
        assert len(all_box) == len(points_seq), f"not match. sentence: {sentence}. boxes:{points_seq}"
        if len(all_box) == 0:
            return sentence
        bboxes_strs = [self.format_point(bboxes) for bboxes in points_seq]
        converted = sentence.replace(self.points_token, '{}').format(*bboxes_strs)
        return converted


class PlainBoxFormatter(BoxFormatter):

    def __init__(self, *args, precision=3, use_small_brackets=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.use_small_brackets = use_small_brackets

        small_brackets_pat = re.compile(r'\(\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3}(?:;\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3})*\)')
        middle_brackets_pat = re.compile(r'\[\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3}(?:;\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3})*\]')
        self.pat = small_brackets_pat if use_small_brackets else middle_brackets_pat

    def format_box(self, boxes: Boxes) -> str:
        box_strs = []
        for box in boxes:
            box_strs.append(','.join([f"{elem:.{self.precision}f}" for elem in box]))
        box_str = ';'.join(box_strs)
        if self.use_small_brackets:
            return "(" + box_str + ")"
        return "[" + box_str + "]"

    def format_point(self, points) -> str:
        return self.format_box(points)

    def extract(self, string: str) -> List[Boxes]:
        """ balabala<boxes>balabala<boxes> -> [boxes, boxes] """
        ret = []
        for bboxes_str in self.pat.findall(string):
            bboxes = []
            bbox_strs = bboxes_str.replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(";")
            for bbox_str in bbox_strs:
                bbox = list(map(float, bbox_str.split(',')))
                bboxes.append(bbox)
            ret.append(bboxes)
        return ret


# -- shikras/shikra@ff79a4c box_process_function.py, lines 34-95: BoxFormatProcess.__call__, single image -------------
def shikra_box_format_process(raw_conv: List[Dict[str, Any]], target: Dict[str, Any], box_formatter):
    normalized_boxes = []
    if target is not None and 'boxes' in target:
        for box in target['boxes']:
            normalized_boxes.append(norm_box_xyxy(box, w=target['width'], h=target['height']))
    normalized_points = []
    if target is not None and 'points' in target:
        for point in target['points']:
            normalized_points.append(norm_point_xyxy(point, w=target['width'], h=target['height']))
    for sentence in raw_conv:
        words: str = sentence['value']
        boxes_seq: List[List[int]] = sentence.get('boxes_seq', None)
        if boxes_seq is not None:
            boxes_seq: List[Boxes] = map_obj(normalized_boxes, boxes_seq)
            converted = box_formatter(words, boxes_seq)
            words = converted
        points_seq: List[List[int]] = sentence.get('points_seq', None)
        if points_seq is not None:
            points_seq: List[Boxes] = map_obj(normalized_points, points_seq)
            converted = box_formatter.call_on_point(words, points_seq)
            words = converted
        if boxes_seq is not None or points_seq is not None:
            sentence['raw_value'] = sentence['value']
            sentence['value'] = words
    return raw_conv, target


# -- NExT-ChatV/NExT-Chat@1e6c20f7e88feea44985e6dacbddc3c4d5701e3e mllm/dataset/process_function/
# -- box_process_function.py, lines 60-108 (BoxFormatProcess.__call__, single image; flatten) -------------------------
NEXTCHAT_BOXES_PLACEHOLDER = '<at> <boxes>'
NEXTCHAT_POINTS_PLACEHOLDER = '<points>'


def flatten(boxes: List[Boxes]):
    return [b for a in boxes for b in a]


def nextchat_box_format_process(raw_conv, target) -> Tuple[list, dict]:
    normalized_boxes = []
    if target is not None and 'boxes' in target:
        for box in target['boxes']:
            normalized_boxes.append(norm_box_xyxy(box, w=target['width'], h=target['height']))
    normalized_points = []
    if target is not None and 'points' in target:
        for point in target['points']:
            normalized_points.append(norm_point_xyxy(point, w=target['width'], h=target['height']))
    ret_all_boxes = []
    ret_gpt_boxes = []
    for sentence in raw_conv:
        words: str = sentence['value']
        boxes_seq: List[List[int]] = sentence.get('boxes_seq', None)
        assert NEXTCHAT_POINTS_PLACEHOLDER not in words  # there should be no potints
        if boxes_seq is not None:
            boxes_seq: List[Boxes] = map_obj(normalized_boxes, boxes_seq)
            to_replace_strs = [" ".join([NEXTCHAT_BOXES_PLACEHOLDER] * len(seq)) for seq in boxes_seq]
            words = words.replace(NEXTCHAT_BOXES_PLACEHOLDER, "{}").format(*to_replace_strs)
            ret_all_boxes.extend(flatten(boxes_seq))
            if sentence["from"] == "gpt":
                ret_gpt_boxes.extend(flatten(boxes_seq))
        points_seq: List[List[int]] = sentence.get('points_seq', None)
        if points_seq is not None:
            points_seq: List[Boxes] = map_obj(normalized_points, points_seq)
        if boxes_seq is not None or points_seq is not None:
            sentence['raw_value'] = sentence['value']
            sentence['value'] = words
    return raw_conv, dict(all_boxes=ret_all_boxes, gpt_boxes=ret_gpt_boxes)


# -- NExT-ChatV/NExT-Chat@1e6c20f mllm/dataset/single_image_dataset/res.py, lines 38-43 -----------------------------
def decode_mask(mask, h, w):
    rle = maskutil.frPyObjects(mask, h, w)
    m = maskutil.decode(rle)
    m = np.sum(m, axis=2)
    m = m.astype(np.uint8)  # convert to np.uint8
    return m


# -- the tests ----------------------------------------------------------------------------------------------------
def _export(out, kind, tmp_path) -> list[dict]:
    target = tmp_path / f"{kind}.jsonl"
    assert cli.main(["export", kind, str(out), str(target)]) == 0
    return [json.loads(line) for line in target.read_text().splitlines()]


def _rows(out) -> dict[str, dict]:
    import pyarrow.parquet as pq

    return {r["id"]: r for p in sorted(out.glob("dialogues/part-*.parquet")) for r in pq.read_table(p).to_pylist()}


def test_shikras_own_box_format_process_reads_every_placeholder(sample_build_in, tmp_path):
    """Every item of the sample through Shikra's BoxFormatProcess with its PlainBoxFormatter: no placeholder is
    left, and the boxes and points it prints are the dialogue's, in order, to its 3 decimals."""
    out = sample_build_in("shikra_jsonl")
    rows = _rows(out)
    items = _export(out, "shikra_jsonl", tmp_path)
    assert len(items) == len(rows) and {i["task"] for i in items} >= {"grounding", "pointqa", "detection",
                                                                       "flickr_grounded_caption"}
    formatter = PlainBoxFormatter()
    for item in items:
        conv, _ = shikra_box_format_process(item["conversations"], item["target"], formatter)
        text = " ".join(t["value"] for t in conv)
        assert "<boxes>" not in text and "<points>" not in text, item["id"]
        row = rows[item["id"]]
        printed = [b for group in formatter.extract(text) for b in group]
        assert len(printed) == len(row["boxes"])
        for p, b in zip(printed, row["boxes"]):
            assert p == pytest.approx(b, abs=0.0005 + 1e-9), item["id"]
        points = [[float(v) for v in m] for m in re.findall(r"\[(\d\.\d+),(\d\.\d+)\]", text)]
        assert len(points) == len(row["points"])
        for p, q in zip(points, row["points"]):
            assert p == pytest.approx(q, abs=0.0005 + 1e-9), item["id"]


def test_nextchats_own_loader_reads_every_box_and_mask(sample_build_in, tmp_path, capsys):
    """NExT-Chat's BoxFormatProcess over the export (dialogues with points are left out: it asserts there are
    none) recovers every box; its decode_mask over a RES item's polygons gives the object's mask."""
    import pyarrow.parquet as pq

    out = sample_build_in("nextchat")
    rows = _rows(out)
    items = _export(out, "nextchat", tmp_path)
    with_points = {i for i, r in rows.items() if r["points"]}
    assert with_points and {i["id"] for i in items} == set(rows) - with_points
    assert f"left out {len(with_points)} dialogue(s)" in capsys.readouterr().err
    records = {r["key"]: r for p in out.glob("images/*/part-*.parquet")
               for r in pq.read_table(p, columns=["key", "objects"]).to_pylist()}
    segmented = 0
    for item in items:
        conv, boxes = nextchat_box_format_process(item["conversations"], item["target"])
        row = rows[item["id"]]
        assert len(boxes["all_boxes"]) == len(row["boxes"])
        for p, b in zip(boxes["all_boxes"], row["boxes"]):
            assert p == pytest.approx(b, abs=0.0005 + 1e-9)
        text = " ".join(t["value"] for t in conv)
        assert text.count("<at> <boxes>") == len(row["boxes"])  # one per box after its expansion
        for mask, shown in zip(item["target"].get("masks", []), row["masks"]):
            if mask is None:
                continue
            pixels = decode_mask(mask, item["height"], item["width"])
            obj = next(o for o in records[row["key"]]["objects"] if (o["mask"] or {}).get("counts") == shown["counts"])
            theirs = maskutil.decode({"size": obj["mask"]["size"], "counts": obj["mask"]["counts"].encode()})
            assert (pixels > 0).sum() == obj["area"] and ((pixels > 0) == (theirs > 0)).all()
            segmented += 1
    assert segmented >= 1


@pytest.mark.parametrize("fmt", ["shikra_jsonl", "nextchat"])
def test_braces_and_placeholders_in_annotation_text_are_escaped(fmt):
    """Annotation text holding `<boxes>`, `<at>` or a brace would be read as markup by the family's loader (its
    BoxFormatter fills the text with str.format): the renderer escapes it."""
    from rcforge.render import markup
    from rcforge.render.coordinates import get

    f = get(fmt)
    for text in ("a {weird} sign", "the <boxes> label", "<points> here", "<at> the door", "}{"):
        escaped = markup.escape(text, f.reserved)
        assert "{" not in escaped and "}" not in escaped and "<boxes>" not in escaped
        assert "<points>" not in escaped and (fmt != "nextchat" or "<at>" not in escaped)
        assert escaped.replace("<boxes>", "{}").format() == escaped  # str.format sees no field in it


# -- apple/ml-ferret@3c9e5c93c2c3048638f73848343d03f37824eb2b ferret/train/train.py: regulate_box (lines 651-652),
# -- get_bbox_coor (904-905) and the location loop of LazySupervisedDataset.__getitem__ (lines 986-1077), with its
# -- random point-or-box choice fixed to "box" and no region features (add_region_feature False, as by default) -----
VOCAB_IMAGE_W = 1000
VOCAB_IMAGE_H = 1000


def regulate_box(box, img_w, img_h):
    return [max(0, min(box[0], img_w-1)), max(0, min(box[1], img_h-1)), max(0, min(box[2], img_w-1)), max(0, min(box[3], img_h-1))]  # noqa: E501


def get_bbox_coor(box, ratio_w, ratio_h):
    return box[0] * ratio_w, box[1] * ratio_h, box[2] * ratio_w, box[3] * ratio_h


def ferret_locations(sources):
    from copy import deepcopy

    ratio_w = VOCAB_IMAGE_W * 1.0 / sources[0]['image_w']
    ratio_h = VOCAB_IMAGE_H * 1.0 / sources[0]['image_h']
    conversation = deepcopy(sources[0]['conversations'])
    assert len(sources) == 1
    for box_list_idx, box_list_i in enumerate(sources[0]['box_x1y1x2y2']):
        if len(box_list_i) == 0:
            continue
        location_format = 'box'
        cur_conv = conversation[box_list_idx]['value']
        for box_idx, box_i in enumerate(box_list_i):
            box_i = regulate_box(box_i, sources[0]['image_w'], sources[0]['image_h'])
            if location_format == 'box':
                raw_coor_i = get_bbox_coor(box=box_i, ratio_w=ratio_w, ratio_h=ratio_h)
                coor_i = f'[{int(raw_coor_i[0])}, {int(raw_coor_i[1])}, {int(raw_coor_i[2])}, {int(raw_coor_i[3])}]'
            assert f'<bbox_location{box_idx}>' in cur_conv
            if 'masks' in sources[0] and sources[0]['masks'][box_list_idx][box_idx] is not None:  # its RLE check
                cur_mask = deepcopy(sources[0]['masks'][box_list_idx][box_idx])
                assert cur_mask['size'][0] == sources[0]['image_h']
                assert cur_mask['size'][1] == sources[0]['image_w']
                cur_mask['counts'] = cur_mask['counts'].encode('ascii')  # generate_mask_for_feature, line 911
                maskutil.decode(cur_mask)
            cur_conv = cur_conv.replace(f'<bbox_location{box_idx}>', coor_i)
        conversation[box_list_idx]['value'] = cur_conv
    sources[0]['conversations'] = conversation
    return sources


def test_ferrets_own_location_loop_reads_every_box_and_mask(sample_build_in, tmp_path, capsys):
    """Ferret's loop over the export (read as its loaders read it: one JSON list): every <bbox_location{i}> of
    every turn is replaced, and the coordinates it writes on its 1000 grid are the dialogue's boxes; every mask
    decodes at the image's size. Dialogues with points are left out (its items hold boxes)."""
    out = sample_build_in("ferret")
    rows = _rows(out)
    target = tmp_path / "ferret.json"
    assert cli.main(["export", "ferret", str(out), str(target)]) == 0
    items = json.loads(target.read_text())
    with_points = {i for i, r in rows.items() if r["points"]}
    assert with_points and {i["id"] for i in items} == set(rows) - with_points
    masked = 0
    for item in items:
        (source,) = ferret_locations([dict(item, dataset="refexp", location_instruction=True)])
        text = " ".join(t["value"] for t in source["conversations"])
        assert "<bbox_location" not in text, item["id"]
        row = rows[item["id"]]
        written = [[int(v) for v in m] for m in re.findall(r"\[(\d+), (\d+), (\d+), (\d+)\]", text)]
        assert len(written) == len(row["boxes"]), item["id"]
        w, h = row["width"], row["height"]
        for got, box in zip(written, row["boxes"]):
            pixels = [min(v * (w if i % 2 == 0 else h), (w if i % 2 == 0 else h) - 1) for i, v in enumerate(box)]
            assert all(abs(g - int(p * 1000 / (w if i % 2 == 0 else h))) <= 1
                       for i, (g, p) in enumerate(zip(got, pixels))), (item["id"], got, box)
        masked += sum(m is not None for turn in item.get("masks", []) for m in turn)
    assert masked >= 1


# -- FoundationVision/Groma@d3a95b6c2657dcb5c05f326da8895f521cf60009: groma/data/datasets/det_data.py lines 8-13
# -- (normalize_box_coordinates) and groma/data/datasets/groma.py lines 27-55 (GromaInstruct.preprocess, the boxes
# -- and the conversation; tokenizing left out); box_convert(..., 'xywh', 'cxcywh') is torchvision's
# -- ops/_box_convert.py _box_xywh_to_cxcywh ----------------------------------------------------------------------
GROMA_TOKENS = {"ground": "[grounding]", "sep": "<sep>"}


def normalize_box_coordinates(bbox, img_shape):
    import torch

    cx, cy, w, h = bbox.split((1, 1, 1, 1), dim=-1)
    img_h, img_w = img_shape[:2]
    bbox_new = [(cx / img_w), (cy / img_h), (w / img_w), (h / img_h)]
    bbox_new = torch.clamp(torch.cat(bbox_new, dim=-1), min=0., max=1.)
    return bbox_new


def box_xywh_to_cxcywh(boxes):
    import torch

    x, y, w, h = boxes.unbind(-1)
    boxes = [(x + w / 2), (y + h / 2), w, h]
    return torch.stack(boxes, dim=-1)


def groma_preprocess(data_item):
    import torch

    bboxes = data_item['boxes']
    bboxes = torch.tensor(bboxes)
    bboxes = box_xywh_to_cxcywh(bboxes)
    img_w = data_item['width']
    img_h = data_item['height']
    bboxes = normalize_box_coordinates(bboxes, (img_h, img_w))
    conversations = data_item['conversation']
    new_boxes = []
    new_conversations = []
    assert len(conversations) % 2 == 0
    for i, conversation in enumerate(conversations):
        chat = conversation['value']
        if i % 2 == 0:
            chat = GROMA_TOKENS['ground'] + chat
        else:
            chat = GROMA_TOKENS['sep'] + chat + GROMA_TOKENS['sep']
            box_inds = conversation['box_inds']
            new_boxes.extend(bboxes[box_inds])
        new_conversations.append(chat)
    new_boxes = torch.stack(new_boxes)
    return new_conversations, new_boxes


def test_gromas_own_preprocess_pairs_every_ground_box_with_its_box(sample_build_in, tmp_path, capsys):
    """GromaInstruct.preprocess over the export: the boxes it stacks, one per <ground_box> token of the answers in
    order, are the dialogue's boxes (as [cx, cy, w, h] on the image); the dialogues it cannot take (boxes in a
    question, no box in an answer, points) are left out and counted."""
    pytest.importorskip("torch")
    out = sample_build_in("groma")
    rows = _rows(out)
    target = tmp_path / "groma.json"
    assert cli.main(["export", "groma", str(out), str(target)]) == 0
    items = json.loads(target.read_text())
    left_out = len(rows) - len(items)
    assert items and left_out and f"left out {left_out} dialogue(s)" in capsys.readouterr().err
    for item in items:
        chats, boxes = groma_preprocess(item)
        row = rows[item["id"]]
        assert sum(c.count("<ground_box>") for c in chats[1::2]) == len(boxes) == len(row["boxes"])
        assert all(c.startswith("[grounding]") and "<image>" not in c for c in chats[::2])
        for got, (x1, y1, x2, y2) in zip(boxes.tolist(), row["boxes"]):
            want = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
            assert got == pytest.approx(want, abs=1e-5), item["id"]


# -- modelscope/ms-swift@3602360a562313afbf2ef6065fdf61f271a2c5b9: swift/template/utils.py lines 124-165
# -- (_split_str_by_regex, split_str_parts_by, plain mode), swift/template/base.py line 56 (special_tokens), 299-320
# -- (normalize_bbox, norm1000), 1009-1034 (_get_bbox_str, replace_bbox, replace_ref: the base template's) and
# -- 1086-1095 (the <ref-object> / <bbox> replacement of _pre_tokenize_images) -------------------------------------
SWIFT_SPECIAL_TOKENS = ['<image>', '<video>', '<audio>', '<bbox>', '<ref-object>', '<cot-process>', '<start-image>']


def _split_str_by_regex(text, regex_delimiters):
    combined_pattern = '|'.join(f'({pattern})' for pattern in regex_delimiters)
    parts = re.split(combined_pattern, text, flags=re.DOTALL)
    parts = [part for part in parts if part is not None]
    if parts[0] == '':
        parts.pop(0)
    else:
        parts.insert(0, '')
    assert len(parts) % 2 == 0, f'result: {parts}'
    assert ''.join(parts) == text, f'split_result: {parts}, text: {text}'
    return parts


def split_str_parts_by(text, delimiters):
    delimiters = [re.escape(delimiter) for delimiter in delimiters]
    parts = _split_str_by_regex(text, delimiters) if delimiters else ['', text]
    res = []
    for key, content in zip(parts[::2], parts[1::2]):
        res.append({'key': key, 'content': content})
    return res


def swift_normalize_bbox(objects, width_list, height_list):
    bbox_list = objects['bbox']
    bbox_type = objects.pop('bbox_type', None) or 'real'
    image_id_list = objects.pop('image_id', None) or []
    image_id_list += [0] * (len(bbox_list) - len(image_id_list))
    for bbox, image_id in zip(bbox_list, image_id_list):
        if bbox_type == 'norm1':
            width, height = 1, 1
        else:
            width, height = width_list[image_id], height_list[image_id]
        for i, (x, y) in enumerate(zip(bbox[::2], bbox[1::2])):
            norm_width, norm_height = 1000, 1000  # self.norm_bbox == 'norm1000'
            bbox[2 * i] = int(round(x / width * norm_width))
            bbox[2 * i + 1] = int(round(y / height * norm_height))


def _get_bbox_str(bbox):
    point = []
    for x, y in zip(bbox[::2], bbox[1::2]):
        point.append(f'({x},{y})')
    return ','.join(point)


def swift_replace(messages, objects):
    """Every message's text as the base template leaves it: each <ref-object> and <bbox> replaced in order."""
    ref_idx = bbox_idx = 0
    out = []
    for message in messages:
        res = []
        for d in split_str_parts_by(message['content'], SWIFT_SPECIAL_TOKENS):
            for context in (d['key'], d['content']):
                if not context:
                    continue
                ref = objects.get('ref') or []
                bbox = objects.get('bbox') or []
                if context == '<ref-object>' and ref_idx < len(ref):
                    c_list = [ref[ref_idx]]
                    ref_idx += 1
                elif context == '<bbox>' and bbox_idx < len(bbox):
                    c_list = [f'[{_get_bbox_str(bbox[bbox_idx])}]']
                    bbox_idx += 1
                else:
                    c_list = [context]
                res += c_list
        out.append("".join(res))
    return out, ref_idx, bbox_idx


def test_ms_swifts_own_template_code_fills_every_ref_and_bbox(sample_build_in, tmp_path):
    """ms-swift's special-token split, normalize_bbox (norm1000) and the base template's replacement over the
    export: every <ref-object> and <bbox> takes its entry, none is left over, and each box is the dialogue's on the
    1000 grid; each phrase is the one the shards hold in place."""
    out = sample_build_in("swift_objects")
    rows = _rows(out)
    items = _export(out, "swift_objects", tmp_path)
    kept = [rows[i] for i in sorted(rows) if not rows[i]["points"]]  # written in id order, point dialogues left out
    assert len(items) == len(kept) and items
    for item, row in zip(items, kept):
        objects = json.loads(json.dumps(item["objects"]))
        assert [m["content"] for m in item["messages"]] == [
            re.sub(r"<ref-object>[^<]*</ref-object>", "<ref-object>", t["value"]) for t in row["conversations"]]
        swift_normalize_bbox(objects, [row["width"]], [row["height"]])
        texts, refs, boxes = swift_replace(item["messages"], objects)
        assert refs == len(objects["ref"]) and boxes == len(objects["bbox"]) == len(row["boxes"])
        assert not any("<bbox>" in t or "<ref-object>" in t for t in texts)
        for text, turn in zip(texts, row["conversations"]):  # each phrase back where the shards hold it
            plain = re.sub(r"<ref-object>([^<]*)</ref-object>", r"\1", turn["value"]).replace("<bbox>", "")
            assert re.sub(r"\[\(\d+,\d+\),\(\d+,\d+\)\]", "", text) == plain
        for got, want in zip(objects["bbox"], row["boxes"]):
            assert all(abs(g - round(v * 1000)) <= 1 for g, v in zip(got, want))


@pytest.mark.parametrize("fmt", ["shikra_jsonl", "ferret", "swift_objects"])
def test_validate_reports_a_placeholder_without_its_box(sample_build_in, tmp_path, fmt):
    """A placeholder format's text and side table must agree: a placeholder taken out of a turn is reported."""
    from rcforge.inspect.validate import validate
    from rcforge.render.coordinates import get

    from conftest import copy_of, tamper_dialogue

    out = copy_of(sample_build_in(fmt), tmp_path)
    assert validate(str(out)) == []
    placeholder = get(fmt).placeholder

    def drop_one(row):
        last = row["conversations"][-1]
        last["value"] = last["value"].replace(placeholder, "", 1)

    target = tamper_dialogue(out, lambda r: placeholder in r["conversations"][-1]["value"], drop_one)
    assert any(target["id"] in p and "placeholder(s) in the text" in p for p in validate(str(out)))
