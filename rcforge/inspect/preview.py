"""`rcforge preview OUT --html FILE [--n 50] [--task T] [--seed S]`: a gallery of sampled dialogues with every box
of the dialogue drawn on its image, each box in the colour of its mention in the text.

A self-contained HTML page: images are embedded (JPEG thumbnails), nothing is fetched. The sample is a seeded
draw over the shards (DuckDB); an image that cannot be read is shown as a blank canvas of its size with the
boxes drawn on it, and its path.
"""

from __future__ import annotations

import base64
import html
import io

import fsspec

from rcforge.core import fsio, images, visual_prompts
from rcforge.core.config import Range, number_flag
from rcforge.core.errors import RecipeError
from rcforge.core.manifest import Manifest
from rcforge.inspect.stats import columns, connect, shards
from rcforge.render import coordinates

COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990",
           "#800000", "#808000", "#000075"]
THUMB = 512
#: what a candidate without a reply shows (`rcforge.bootstrap.decide`'s error stages)
_NO_REPLY = {"image": "image did not read", "model": "model call failed"}


def sample(out: str, n: int, task: str | None, seed: int, *, frame: bool = False) -> list[dict]:
    con = connect(out)
    where = "WHERE task = $task" if task else ""
    params = {"seed": str(seed), **({"task": task} if task else {})}
    have = columns(con, "d")
    # columns that builds before them lack: read where the shards have them (frame only when asked for)
    extra = "".join(f", {c}" for c in ("masks", "groups", "image_vp") if c in have) + (", frame" if frame else "")
    cursor = con.execute(f"SELECT id, source, image, width, height, task, variant, template_id, conversations, "
                         f"boxes, points, coordinates{extra} FROM d {where} ORDER BY md5(id || $seed) LIMIT {int(n)}",
                         params)
    names = [c[0] for c in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    if task and not rows:
        tasks = [t for (t,) in con.execute("SELECT DISTINCT task FROM d ORDER BY task").fetchall()]
        raise RecipeError(f"--task {task}: {out} holds no dialogues of that task; its tasks are {', '.join(tasks)}")
    return rows


def draw(image_bytes: bytes | None, row: dict, fmt: coordinates.Formatter | None = None,
         frame: bool = False) -> tuple[str, bool]:
    """(the image with the dialogue's boxes and points drawn, as a data URL; whether the image itself was there).
    An image that is missing or does not read becomes a blank canvas of the record's size and aspect, so the
    boxes still show where they are. With ``frame``, the image as the trainer's processor gives it to the model
    (`trainer_view`) with the boxes read back from the printed text."""
    from PIL import Image, ImageDraw, UnidentifiedImageError

    w, h = row["width"], row["height"]
    img = None
    if image_bytes is not None:
        try:
            img = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        except (UnidentifiedImageError, OSError):
            img = None
    found = img is not None
    if img is None:
        side = max(w, h, 1)
        img = Image.new("RGB", (max(1, round(w * THUMB / side)), max(1, round(h * THUMB / side))), "#d9d9d9")
    fmt = fmt or coordinates.get(row["coordinates"])
    if frame:
        img, boxes, points = trainer_view(img, row, fmt)
    else:
        scale = img.width / w
        boxes = [[v * scale for v in fmt.to_pixels(box, w, h)] for box in row["boxes"]]
        points = [[v * scale for v in fmt.to_pixels(point, w, h)] for point in row["points"]]
    if not frame:
        img = _with_masks(img, row.get("masks") or [])
    pen = ImageDraw.Draw(img)
    width = max(2, img.width // 200)
    for i, box in enumerate(boxes):
        pen.rectangle(box, outline=COLOURS[i % len(COLOURS)], width=width)
    for j, (x, y) in enumerate(points):
        r = width * 3
        pen.ellipse([x - r, y - r, x + r, y + r], outline="#ffffff", fill=point_colour(len(boxes), j))
    return _thumbnail_url(img), found


def _thumbnail_url(img) -> str:
    """The image as a JPEG thumbnail (at most `THUMB` a side) in a data URL: the page embeds its images."""
    img.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _with_masks(img, masks: list):
    """The image with each shown mask filled, translucent, in the colour of its box (masks are in the image's
    pixels; the picture may be a thumbnail of it)."""
    if not any(masks):
        return img
    from PIL import Image, ImageColor
    from pycocotools import mask as mask_utils

    img = img.convert("RGB")
    for i, mask in enumerate(masks):
        if not mask:
            continue
        pixels = mask_utils.decode({"size": mask["size"], "counts": mask["counts"].encode()})
        shape = Image.fromarray(pixels * 255).resize(img.size, Image.NEAREST)
        fill = Image.new("RGB", img.size, ImageColor.getrgb(COLOURS[i % len(COLOURS)]))
        img = Image.composite(Image.blend(img, fill, 0.45), img, shape)
    return img


def trainer_view(img, row: dict, fmt: coordinates.Formatter):
    """(the image as the model sees it in training, the boxes and points in its pixels): resized to the row's
    ``frame`` (Qwen2.5-VL's processed image), padded to Shikra's square, or the image itself for formats relative
    to it; the boxes and points are read back from the printed text (`Formatter.parse`), not from the columns, so
    what is drawn is what the model is taught."""
    from PIL import Image

    w, h = row["width"], row["height"]
    texts = [t["value"] for t in row["conversations"]]
    if fmt.placeholders:  # no numbers in the text: the side table is what the trainer reads (relative to the image)
        boxes, points = [list(b) for b in row["boxes"]], [list(p) for p in row["points"]]
    else:
        boxes = [b for t in texts for b in fmt.parse(t, w, h)]
        points = [p for t in texts for p in fmt.parse_points(t, w, h)]
    if row.get("frame"):
        img = img.resize(tuple(row["frame"]))
        sx, sy = img.size
    elif square := fmt.padded_square(w, h):
        k = img.width / w
        ox, oy, side = square
        square = Image.new("RGB", (round(side * k),) * 2, "#7f7f7f")
        square.paste(img, (round(ox * k), round(oy * k)))
        img, sx, sy = square, square.width, square.height
    else:
        sx, sy = img.size
    return (img, [[v * (sx if i % 2 == 0 else sy) for i, v in enumerate(b)] for b in boxes],
            [[x * sx, y * sy] for x, y in points])


def point_colour(boxes: int, index: int) -> str:
    """The colour of the dialogue's ``index``-th point: the colours after its boxes'."""
    return COLOURS[(boxes + index) % len(COLOURS)]


def colour_text(text: str, fmt: coordinates.Formatter, start: int, w: int, h: int, *, point_start: int = 0,
                boxes: int = 0, groups=None) -> tuple[str, int, int]:
    """HTML of a turn with each printed mention in the colour of its (first) drawn box and each printed point in
    the colour of its drawn point; returns the next box and point indices. A mention is what the format's
    ``pattern`` matches (a JSON answer's objects one by one), a point what its ``point_pattern`` matches;
    ``boxes`` is the dialogue's number of boxes (points take the colours after them); ``groups``, an iterator over
    the dialogue's ``groups`` column, says how many boxes each placeholder of a placeholder format stands for."""
    import re

    spans = []  # (start, end, kind, boxes in it)
    for m in re.finditer(fmt.pattern, text):
        if fmt.placeholders:
            if fmt.placeholder_per_box:
                n = m.group().count(fmt.placeholder)
            else:
                n = 1 if groups is None else next(groups, 1)
        else:
            n = len(fmt.parse(m.group(), w, h))
        if n:
            spans.append((m.start(), m.end(), "box", n))
    if fmt.point_pattern:
        for m in re.finditer(fmt.point_pattern, text):
            if not any(a < m.end() and m.start() < b for a, b, _, _ in spans):
                spans.append((m.start(), m.end(), "point", 0))
    out, pos, index, point = [], 0, start, point_start
    for a, b, kind, n in sorted(spans):
        out.append(html.escape(text[pos:a]))
        colour = COLOURS[index % len(COLOURS)] if kind == "box" else point_colour(boxes, point)
        out.append(f'<b style="color:{colour}">{html.escape(text[a:b])}</b>')  # Shikra's [a;b]: one colour
        index, point = index + n, point + (kind == "point")
        pos = b
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>"), index, point


def _marked_figure(out: str, row: dict) -> str:
    """A dialogue asked with marks (`rcforge.core.visual_prompts`): its marked image, beside the original (which shows
    the answer's boxes); '' for any other dialogue."""
    marked = row.get("image_vp")
    if not marked:
        return ""
    from PIL import Image

    path, refused = images.confine(fsio.join(out, visual_prompts.FOLDER), marked.split("/", 1)[-1])
    try:
        if refused:
            raise OSError(refused)
        img = Image.open(io.BytesIO(fsio.read_bytes(path, "marked image"))).convert("RGB")
    except Exception:  # shown as missing, whatever the filesystem says
        return f'<figure><figcaption class="missing">marked image missing: {html.escape(marked)}</figcaption></figure>'
    return (f'<figure class="marked"><img src="{_thumbnail_url(img)}" alt="{html.escape(marked)}">'
            '<figcaption>the image the '
            f'model is shown, its regions marked</figcaption></figure>')


def render_html(out: str, rows: list[dict], *, frame: bool = False) -> str:
    manifest = Manifest.load(out, "preview")
    params = (manifest.build.coordinate_params if manifest.build else None) or {}
    roots = manifest.image_roots()
    notes = manifest.recipe.get("notes") or {}  # the recipe's per-source notes ("synthetic boxes ...")
    cards = []
    for row in rows:
        image_path, refused = images.confine(roots.get(row["source"], ""), row["image"])
        data = None
        if refused:  # never read a file outside the images root (a tampered shard, a symlink made later)
            image_path = f"refused: {refused}"
        else:
            try:
                data = fsio.read_bytes(image_path, "image")
            except Exception:  # a missing image is shown as missing, whatever the filesystem says
                data = None
        fmt = coordinates.get(row["coordinates"], params)
        url, found = draw(data, row, fmt, frame)
        index, point, turns = 0, 0, []
        groups = iter(row.get("groups") or [])
        for turn in row["conversations"]:
            text, index, point = colour_text(turn["value"], fmt, index, row["width"], row["height"],
                                             point_start=point, boxes=len(row["boxes"]), groups=groups)
            turns.append(f'<p class="{turn["from"]}"><span class="who">{turn["from"]}</span> {text}</p>')
        figure = (f'<figure><img src="{url}" alt="{html.escape(row["image"])}">'
                  + ("" if found else f'<figcaption class="missing">image missing, boxes drawn on a blank '
                                      f'canvas of its size:<br>{html.escape(image_path)}</figcaption>')
                  + "</figure>")
        note = notes.get(row["source"])
        figure += _marked_figure(out, row)
        cards.append(f'<div class="card" data-id="{html.escape(row["id"])}">{figure}<div class="text">'
                     f'<div class="meta">{html.escape(row["id"])} · {html.escape(row["template_id"])}</div>'
                     + (f'<div class="note">{html.escape(str(note))}</div>' if note else "")
                     + f'{"".join(turns)}</div></div>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcforge preview</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; }}
.card {{ display: flex; gap: 1em; background: white; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em;
        margin-bottom: 1em; }}
.card img {{ max-width: 512px; max-height: 512px; }}
figure {{ margin: 0; }}
.missing {{ max-width: 512px; color: #900; font-size: 0.85em; word-break: break-all; }}
.text {{ flex: 1; }} .meta {{ color: #666; font-size: 0.8em; margin-bottom: 0.4em; }}
.note {{ background: #fff3cd; color: #664d03; font-size: 0.85em; padding: 0.2em 0.4em; margin-bottom: 0.4em; }}
.who {{ font-weight: bold; text-transform: uppercase; font-size: 0.75em; color: #555; margin-right: 0.4em; }}
.human {{ background: #f2f6ff; padding: 0.3em; }} .gpt {{ background: #f5fff2; padding: 0.3em; }}
.candidate {{ background: #fff8ec; padding: 0.3em; }}
</style></head><body>
<h1>rcforge preview</h1><p>{len(rows)} items from {html.escape(str(out))}</p>
{"".join(cards)}
</body></html>
"""


def sample_candidates(out: str, n: int, seed: int) -> list[dict]:
    """Bootstrap candidates as preview rows: the original box and the re-grounded one, the description as text."""
    con = connect(out, "c", ("bootstrap", "candidates"))
    cursor = con.execute(f"SELECT * FROM c ORDER BY md5(key || '/' || object_id || '/' || sample || $seed) "
                         f"LIMIT {int(n)}", {"seed": str(seed)})
    names = [c[0] for c in cursor.description]
    rows = []
    for values in cursor.fetchall():
        c = dict(zip(names, values))
        w, h = c["width"], c["height"]
        boxes = [c["box"]] + ([c["predicted_box"]] if c["predicted_box"] else [])
        fmt = coordinates.get("pink")
        norm = [list(fmt.normalize(b, w, h)) for b in boxes]
        text = (f"{c['category']} {fmt.box(c['box'], w, h)} -> \"{c['description'] or ''}\" -> "
                + (fmt.box(c["predicted_box"], w, h) if c["predicted_box"] else
                   _NO_REPLY.get(c["error_stage"]) or f"format error ({c['error_stage']})")
                + f" IoU {c['iou']:.2f}" + (f", other {c['other_iou']:.2f}" if c["other_iou"] else ""))
        rows.append({"id": f"{c['key']}/object:{c['object_id']}/sample:{c['sample']}", "source": c["source"],
                     "image": c["image"], "width": w, "height": h, "template_id": c["backend"],
                     "conversations": [{"from": "candidate", "value": text}], "boxes": norm, "points": [],
                     "coordinates": "pink"})
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's (or a bootstrap run's) output folder")
    parser.add_argument("--html", required=True, help="the HTML file to write")
    parser.add_argument("--n", type=number_flag(int, Range(1)), default=50, help="how many dialogues")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--seed", type=number_flag(int, Range(0, 2**63 - 1)), default=0, help="which sample")
    parser.add_argument("--bootstrap", action="store_true",
                        help="show bootstrap candidates (the default when OUT has no dialogues)")
    parser.add_argument("--frame", action="store_true",
                        help="draw each image as the trainer's processor gives it to the model (Qwen2.5-VL's "
                             "resized frame, Shikra's padded square) with the boxes read back from the text")


def main(args, rest) -> None:
    if args.bootstrap or not shards(args.out, "dialogues"):
        rows, what = sample_candidates(args.out, args.n, args.seed), "bootstrap candidates"
    else:
        rows, what = sample(args.out, args.n, args.task, args.seed, frame=args.frame), "dialogues"
    with fsspec.open(args.html, "w", encoding="utf-8") as f:
        f.write(render_html(args.out, rows, frame=args.frame and what == "dialogues"))
    print(f"wrote {len(rows)} {what} to {args.html}")
