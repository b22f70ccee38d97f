"""Flickr30K Entities: ``Sentences/<id>.txt``, ``Annotations/<id>.xml`` and the split lists (``train.txt``).

Sentences mark phrases as ``[/EN#18/people A child]`` (a chain id, one or more types separated by ``/``, then the
words). The XML is PASCAL-VOC-like: ``<size>``, then ``<object>`` elements, each with one or more ``<name>``
chain ids and either a ``<bndbox>`` (1-based inclusive pixels, converted to 0-based edges, see
`rcforge.core.boxes.voc_to_xyxy`) or ``<nobndbox>1</nobndbox>`` / ``<scene>1</scene>``. A box shared by several
chains is one object linked from each of them; one chain may have several boxes.

One record per image: every box as an object (its names are the phrases that mention it), and the 5 captions
with their phrases' character spans and the object ids they refer to. XML is parsed with defusedxml (no entity
expansion, no external entities); a file that does not parse rejects its image (``bad_xml``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from rcforge.core import fsio
from rcforge.core.boxes import check_size, voc_to_xyxy
from rcforge.core.config import path_field
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledger import ImageBuilder, ImageResult, image_record, rejected_image
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import ReadContext, register

SOURCE = "flickr30k_entities"
PHRASE = re.compile(r"\[/EN#(\d+)/([^\s\]]+) ([^\]]*)\]")


@dataclass(frozen=True)
class Flickr30kEntitiesConfig:
    """Flickr30K Entities.

    root: folder with Sentences/, Annotations/ and the split lists (train.txt, val.txt, test.txt).
    split: which split list to read.
    images: the flickr30k-images folder (``<id>.jpg``).
    """

    root: str = path_field()
    images: str = path_field(must_exist=False)
    split: str = "train"


#: a space Flickr30K's tokenizer put before punctuation or a clitic ("edge .", "man 's"), or after "("
_TOKENIZED = re.compile(r"\s+(?=[.,!?;:)%]|'s\b|'re\b|'ve\b|'ll\b|'d\b|'m\b|n't\b)|(?<=\()\s+")


def detokenize(text: str) -> str:
    """Flickr30K's tokenized text as prose: "sits on the edge ." -> "sits on the edge.", "man 's" -> "man's"."""
    return _TOKENIZED.sub("", text)


def parse_sentence(line: str) -> tuple[str, list[dict]]:
    """``[/EN#1/people A man] runs .`` -> ("A man runs.", [{entity_id, types, text, start, end}]): the caption
    detokenized (`detokenize`), each phrase with its offsets in it."""
    text_parts, phrases, pos, last = [], [], 0, 0
    for m in PHRASE.finditer(line):
        before = detokenize(line[last:m.start()])
        text_parts.append(before)
        pos += len(before)
        words = detokenize(" ".join(m.group(3).split()))
        phrases.append({"entity_id": m.group(1), "types": m.group(2).split("/"), "text": words,
                        "start": pos, "end": pos + len(words)})
        text_parts.append(words)
        pos += len(words)
        last = m.end()
    text_parts.append(detokenize(line[last:]))
    text = "".join(text_parts)
    if "[/EN#" in text:
        raise BadRecord("bad_sentence", f"unparsed phrase markup in {line.strip()!r}", field="sentence")
    stripped = text.rstrip()
    return stripped.lstrip(), [dict(p, start=p["start"] - (len(text) - len(text.lstrip())),
                                    end=p["end"] - (len(text) - len(text.lstrip()))) for p in phrases]


def parse_annotation(xml_bytes: bytes, path: str) -> tuple[int, int, list[dict]]:
    """(width, height, objects) where each object is {names: [chain ids], box: voc tuple | None, scene, nobox}."""
    try:
        root = SafeET.fromstring(xml_bytes)
    except (ParseError, DefusedXmlException) as err:
        raise BadRecord("bad_xml", f"XML does not parse: {err}", field="xml") from None
    size = root.find("size")
    if size is None:
        raise BadRecord("missing_field", "no <size> element", field="size")
    width, height = check_size(_num(size.findtext("width")), _num(size.findtext("height")), "size.")
    objects = []
    for i, obj in enumerate(root.findall("object")):
        names = [n.text.strip() for n in obj.findall("name") if n.text and n.text.strip()]
        bnd = obj.find("bndbox")
        box = None
        if bnd is not None:
            box = tuple(_num(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append({"index": i, "names": names, "box": box,
                        "scene": (obj.findtext("scene") or "0").strip() == "1",
                        "nobox": (obj.findtext("nobndbox") or "0").strip() == "1"})
    return width, height, objects


def _num(text):
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return text


@register(SOURCE, Flickr30kEntitiesConfig, provides=("captions",))
def read(config: Flickr30kEntitiesConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """Flickr30K Entities captions with phrase -> box links, one record per image of the split."""
    return gather(SOURCE, _results(config, ctx))


def _results(config: Flickr30kEntitiesConfig, ctx: ReadContext) -> Iterator[ImageResult]:
    split_path = fsio.require(fsio.join(config.root, f"{config.split}.txt"),
                              f"sources.flickr30k_entities split list for split {config.split!r}")
    ids = [line.strip() for line in fsio.read_text(split_path, "split list").splitlines() if line.strip()]
    seen = set()
    for image_id in ids:
        key = f"flickr30k/{image_id}"
        sent_path = fsio.join(config.root, "Sentences", f"{image_id}.txt")
        xml_path = fsio.join(config.root, "Annotations", f"{image_id}.xml")
        if image_id in seen:
            yield rejected_image(SOURCE, key, split_path, f"id {image_id}",
                                 BadRecord("duplicate_image_id", f"{image_id} is listed twice", field="id"))
            continue
        seen.add(image_id)
        try:
            lines = [ln for ln in fsio.read_text(sent_path, "sentence file").splitlines() if ln.strip()]
            xml = fsio.read_bytes(xml_path, "annotation file")
        except InputError as err:
            yield rejected_image(SOURCE, key, sent_path if "sentence" in str(err) else xml_path, f"id {image_id}",
                                 BadRecord("missing_file", str(err)))
            continue
        try:
            width, height, xml_objects = parse_annotation(xml, xml_path)
        except BadRecord as err:
            yield rejected_image(SOURCE, key, xml_path, f"id {image_id}", err,
                                 items_read=Counter(caption=len(lines)))
            continue
        yield _build(image_id, key, width, height, xml_objects, lines, sent_path, xml_path, config.split)


def _build(image_id, key, width, height, xml_objects, lines, sent_path, xml_path, split) -> ImageResult:
    b = ImageBuilder(SOURCE, key, xml_path, width, height)
    objects, boxes_of_chain = [], defaultdict(list)
    scene_chains, nobox_chains = set(), set()
    chains_of: list[list[str]] = []  # per object: the chain ids of its <name>s
    for obj in xml_objects:
        if obj["box"] is None:
            for name in obj["names"]:
                (scene_chains if obj["scene"] else nobox_chains).add(name)
            continue
        b.read("object")
        desc = f"<object> #{obj['index']} (names {','.join(obj['names'])})"
        if not obj["names"]:
            b.reject("object", BadRecord("missing_field", "box has no <name>", field="name"), desc)
            continue
        not_ids = [n for n in obj["names"] if not n.isdigit()]
        if not_ids:  # a chain id is the number of an [/EN#<id>/...] phrase of the sentences
            b.reject("object", BadRecord("wrong_type", f"<name> {not_ids[0]!r:.40} is not a chain id (a number)",
                                         field="name"), desc)
            continue
        try:
            xyxy = voc_to_xyxy(*obj["box"])
        except BadRecord as err:
            b.reject("object", err, desc)
            continue
        box = b.box("object", xyxy, desc, field="bndbox")
        if box is None:
            continue
        oid = len(objects)
        objects.append({"id": oid, "names": [], "category_id": None, "box": box, "ignore": False,
                        "attributes": [], "synsets": []})
        chains_of.append(obj["names"])
        for name in obj["names"]:
            boxes_of_chain[name].append(oid)

    captions = []
    for i, line in enumerate(lines):
        b.read("caption")
        try:
            text, phrases = parse_sentence(line)
        except BadRecord as err:
            b.reject("caption", err, f"line {i + 1}", file=sent_path)
            continue
        for p in phrases:
            chain = p["entity_id"]
            p["object_ids"] = list(boxes_of_chain.get(chain, []))
            p["no_box"] = not p["object_ids"]
            p["scene"] = chain in scene_chains
            for oid in p["object_ids"]:
                name = p["text"].lower()
                if name not in objects[oid]["names"]:
                    objects[oid]["names"].append(name)
        captions.append({"id": i, "text": text, "phrases": phrases})
    for obj, chains in zip(objects, chains_of):
        if not obj["names"]:
            obj["names"] = [f"entity {c}" for c in chains]
    record = image_record(key, SOURCE, image_id, f"{image_id}.jpg", width, height, split=split,
                          flickr_id=int(image_id) if str(image_id).isdigit() else None,
                          objects=objects, captions=captions)
    return b.finish(record)
