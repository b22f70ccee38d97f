"""`rcforge report OUT --html FILE`: the statistics of `rcforge stats` as a self-contained HTML page of plots.

The plots are inline SVG written here (bar charts and a heatmap): no script, no network, opens anywhere.
"""

from __future__ import annotations

import html
import math

import fsspec

from rcforge.inspect.stats import compute

#: the width of one character of the 11 px label font, generously (labels are sized to fit, never cut)
CHAR_PX = 7.0


def _nice(top: float) -> float:
    """The round number at or above ``top``: 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= top)


def bar_chart(title: str, labels: list[str], values: list[float], *, axis: str, category: str,
              fmt: str = "{:,.0f}", tick_fmt: str | None = None, empty: str = "nothing to show") -> str:
    """A horizontal bar chart as an SVG element: a bar per label (every bin kept, empty ones at 0), an x axis
    with ticks and its title and unit (``axis``), the labels' name above them (``category``). The left margin
    fits the longest label. With no values, or all zero, one line says so (``empty``) instead of an empty plot."""
    if not values or not any(values):
        return f'<p class="empty"><b>{html.escape(title)}</b>: {html.escape(empty)}.</p>'
    bar, plot, right = 18, 360, 70
    left = int(max(CHAR_PX * max(len(str(label)) for label in labels) + 16, CHAR_PX * len(category) + 8, 60))
    step = _nice(max(values) / 4)  # round ticks: 1, 2 or 5 times a power of ten apart
    marks = max(1, math.ceil(max(values) / step - 1e-9))
    top = step * marks
    first = 46
    height = first + bar * len(values) + 52
    rows = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = first + i * bar
        length = plot * value / top
        rows.append(f'<text x="{left - 6}" y="{y + bar * 0.7:.1f}" text-anchor="end" class="label">'
                    f'{html.escape(str(label))}</text>'
                    f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{bar - 4}" class="bar">'
                    f'<title>{html.escape(str(label))}: {fmt.format(value)}</title></rect>'
                    f'<text x="{left + length + 4:.1f}" y="{y + bar * 0.7:.1f}" class="value">'
                    f'{fmt.format(value)}</text>')
    base = first + bar * len(values) + 4
    ticks = []
    for k in range(marks + 1):
        x = left + plot * k / marks
        ticks.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 5}" class="axis"/>'
                     f'<text x="{x:.1f}" y="{base + 17}" text-anchor="middle" class="tick">'
                     f'{(tick_fmt or fmt).format(step * k)}</text>')
    width = left + plot + right
    return (f'<svg class="plot" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="18" class="title">{html.escape(title)}</text>'
            f'<text x="{left - 6}" y="{first - 6}" text-anchor="end" class="axis-title">{html.escape(category)}</text>'
            f'{"".join(rows)}'
            f'<line x1="{left}" y1="{first}" x2="{left}" y2="{base}" class="axis"/>'
            f'<line x1="{left}" y1="{base}" x2="{left + plot}" y2="{base}" class="axis"/>{"".join(ticks)}'
            f'<text x="{left + plot / 2:.1f}" y="{base + 36}" text-anchor="middle" class="axis-title">'
            f'{html.escape(axis)}</text></svg>')


def heatmap(title: str, grid: list[list[int]], cell: int = 40, *, unit: str = "boxes") -> str:
    """A grid of counts as an SVG element, with its axes and a colour legend from 0 to the largest count."""
    top = max((v for row in grid for v in row), default=0)
    if not top:
        return f'<p class="empty"><b>{html.escape(title)}</b>: no boxes.</p>'
    left, first = 30, 30
    cells = []
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            shade = int(255 - 215 * v / top)
            cells.append(f'<rect x="{left + c * cell}" y="{first + r * cell}" width="{cell - 1}" '
                         f'height="{cell - 1}" fill="rgb({shade},{shade},255)"><title>{v:,} {unit}</title></rect>')
    size = len(grid) * cell
    legend_x = left + size + 30
    legend = ('<defs><linearGradient id="heat" x1="0" y1="1" x2="0" y2="0">'
              '<stop offset="0" stop-color="rgb(255,255,255)"/>'
              f'<stop offset="1" stop-color="rgb(40,40,255)"/></linearGradient></defs>'
              f'<rect x="{legend_x}" y="{first}" width="14" height="{size}" fill="url(#heat)" class="legend"/>'
              f'<text x="{legend_x + 20}" y="{first + 10}" class="tick">{top:,} {unit}</text>'
              f'<text x="{legend_x + 20}" y="{first + size}" class="tick">0</text>')
    return (f'<svg class="plot" role="img" aria-label="{html.escape(title)}" width="{legend_x + 130}" '
            f'height="{first + size + 40}" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="0" y="18" class="title">{html.escape(title)}</text>{"".join(cells)}'
            f'<text x="{left + size / 2}" y="{first + size + 26}" text-anchor="middle" class="axis-title">'
            f'image x, left to right (eighths of the width)</text>'
            f'<text x="12" y="{first + size / 2}" text-anchor="middle" class="axis-title" '
            f'transform="rotate(-90 12 {first + size / 2})">image y, top to bottom</text>{legend}</svg>')


def _aspect(log2_bucket: int) -> str:
    """A log2 aspect bin as a ratio: -2 -> "1:4 (tall)", 0 -> "1:1", 3 -> "8:1 (wide)"; the ends are open."""
    ratio = f"{2 ** log2_bucket}:1" if log2_bucket >= 0 else f"1:{2 ** -log2_bucket}"
    edge = " or more" if abs(log2_bucket) == 4 else ""
    return ratio + edge + (" (wide)" if log2_bucket > 0 else " (tall)" if log2_bucket < 0 else "")


def _mask_charts(masks: dict) -> list[str]:
    """Mask coverage: per source, the share of image-record objects with a mask; per source and task, the masks
    that dialogues show."""
    return [
        bar_chart("Masks: image-record objects that carry one, per source", [r["source"] for r in masks["objects"]],
                  [r["share"] for r in masks["objects"]], fmt="{:.1%}", tick_fmt="{:.0%}",
                  axis="share of its objects", category="source", empty="no image records"),
        bar_chart("Masks shown, per source and task", [f'{r["source"]} / {r["task"]}' for r in masks["dialogues"]],
                  [r["masks"] for r in masks["dialogues"]], axis="masks", category="source / task",
                  empty="no dialogue shows a mask"),
    ]


def _bootstrap_charts(boot: dict) -> list[str]:
    """The bootstrap section's charts: pairs surviving at each λ, IoU of re-grounded boxes, description length."""
    return [
        bar_chart("Bootstrap: pairs surviving at each lambda",
                  [f'{x["lambda"]:.1f}' for x in boot["survival_curve"]],
                  [x["pairs"] for x in boot["survival_curve"]], axis="objects keeping a pair",
                  category="lambda (IoU threshold)", empty="no pair at any lambda"),
        bar_chart("Bootstrap: IoU of re-grounded boxes",
                  [f'{b["iou_from"]:.1f}-{b["iou_to"]:.1f}' for b in boot["iou_histogram"]],
                  [b["n"] for b in boot["iou_histogram"]], axis="candidates (replies that parsed)",
                  category="IoU with the original box", empty="no reply parsed"),
        bar_chart("Bootstrap: description length", [str(w["words"]) + ("+" if w["words"] == 20 else "")
                                                    for w in boot["description_words"] if w["words"] is not None],
                  [w["n"] for w in boot["description_words"] if w["words"] is not None], axis="descriptions",
                  category="words", empty="no descriptions"),
    ]


def render_html(out: str, figures: dict) -> str:
    by_task: dict[str, int] = {}
    for r in figures["by_task"]:
        by_task[r["task"]] = by_task.get(r["task"], 0) + r["records"]
    by_source: dict[str, int] = {}
    for r in figures["by_task"]:
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["records"]
    per_st = [f'{r["source"]} / {r["task"]}' for r in figures["by_task"]]
    counts = [c for c in figures["counting_answers"] if c["count"] is not None]
    plots = [
        bar_chart("Dialogues per task", list(by_task), list(by_task.values()), axis="dialogues", category="task",
                  empty="no dialogues"),
        bar_chart("Dialogues per source", list(by_source), list(by_source.values()), axis="dialogues",
                  category="source", empty="no dialogues"),
        bar_chart("Counting answers: how often each count is the answer", [str(c["count"]) for c in counts],
                  [c["n"] for c in counts], axis="counting dialogues", category="answer",
                  empty="no counting dialogues"),
        bar_chart("Empty-answer rate per source and task", per_st, [r["empty_answer_rate"] for r in figures["by_task"]],
                  fmt="{:.1%}", tick_fmt="{:.0%}", axis="share of its dialogues whose answer is empty",
                  category="source / task", empty="no empty answers"),
        bar_chart("Boxes per dialogue", per_st, [r["boxes_per_dialogue"] for r in figures["by_task"]], fmt="{:.2f}",
                  tick_fmt="{:.1f}", axis="boxes per dialogue (mean)", category="source / task", empty="no boxes"),
        bar_chart("Box area", [f'{b["area_from"]:.0%}-{b["area_to"]:.0%}' for b in figures["box_area_histogram"]],
                  [b["n"] for b in figures["box_area_histogram"]], axis="boxes",
                  category="share of the image", empty="no boxes"),
        bar_chart("Box aspect ratio", [_aspect(b["log2_bucket"]) for b in figures["box_aspect_log2_histogram"]],
                  [b["n"] for b in figures["box_aspect_log2_histogram"]], axis="boxes",
                  category="width / height (log2 bins)", empty="no boxes"),
        heatmap("Where box centres fall (8x8 grid over the image)", figures["box_centre_heatmap_8x8"]),
        bar_chart("Top predicates asked about", [f'{p["predicate"]} ({p["task"]})' for p in figures["top_predicates"]],
                  [p["n"] for p in figures["top_predicates"]], axis="dialogues", category="predicate (task)",
                  empty="no relation dialogues"),
        bar_chart("Top categories asked about", [f'{c["category"]} ({c["task"]})' for c in figures["top_categories"]],
                  [c["n"] for c in figures["top_categories"]], axis="mentions in dialogues",
                  category="category (task)", empty="no object mentions"),
        bar_chart("Negatives: share of turns asking about a category proven absent",
                  [f'{r["source"]} / {r["task"]}' for r in figures["negatives"]["by_task_and_source"]],
                  [r["share"] for r in figures["negatives"]["by_task_and_source"]], fmt="{:.1%}", tick_fmt="{:.0%}",
                  axis="share of its turns", category="source / task", empty="no negative questions"),
        bar_chart("Negatives by proof", [b["basis"] for b in figures["negatives"]["by_basis"]],
                  [b["n"] for b in figures["negatives"]["by_basis"]], axis="negative turns",
                  category="basis (what proves the absence)", empty="no negative questions"),
        *_mask_charts(figures.get("masks") or {"objects": [], "dialogues": []}),
        bar_chart("Template usage (top 25)", [t["template_id"] for t in figures["template_usage"][:25]],
                  [t["n"] for t in figures["template_usage"][:25]], axis="dialogues", category="template id",
                  empty="no dialogues"),
    ]
    boot = figures.get("bootstrap")
    if boot:
        plots += _bootstrap_charts(boot)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcforge report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 2em; }}
.title {{ font: bold 14px system-ui, sans-serif; }} .label, .value, .tick {{ font: 11px system-ui, sans-serif; }}
.axis-title {{ font: italic 11px system-ui, sans-serif; fill: #444; }}
.bar {{ fill: #4363d8; }} .axis {{ stroke: #888; stroke-width: 1; }} .empty {{ color: #555; }}
</style></head><body>
<h1>rcforge report</h1>
<p>{figures["dialogues"]:,} dialogues, {figures["boxes"]:,} boxes{
    f', {boot["candidates"]:,} bootstrap candidates ({boot["format_error_rate"]:.1%} format errors, '
    f'{boot["unreadable_image_rate"]:.1%} on unreadable images, {boot["model_failure_rate"]:.1%} whose model '
    f'call failed)' if boot else ''
}, from {html.escape(str(out))}</p>
<div class="plots">{"".join(plots)}</div>
</body></html>
"""


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's output folder")
    parser.add_argument("--html", required=True, help="the HTML file to write")


def main(args, rest) -> None:
    figures = compute(args.out)
    with fsspec.open(args.html, "w", encoding="utf-8") as f:
        f.write(render_html(args.out, figures))
    print(f"wrote the report of {figures['dialogues']:,} dialogues to {args.html}")
