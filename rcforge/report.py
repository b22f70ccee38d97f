"""`rcforge report OUT --html FILE`: the statistics of `rcforge stats` as a self-contained HTML page of plots.

The plots are inline SVG written here (bar charts and a heatmap): no script, no network, opens anywhere.
"""

from __future__ import annotations

import html

import fsspec

from rcforge.stats import compute


def bar_chart(title: str, labels: list[str], values: list[float], *, width: int = 640, bar: int = 18,
              fmt: str = "{:,.0f}") -> str:
    """A horizontal bar chart as an SVG element."""
    top = max(values) if values else 1
    left, right = 270, 70
    height = 30 + bar * len(values) + 10
    rows = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 30 + i * bar
        length = 0 if top == 0 else (width - left - right) * value / top
        rows.append(f'<text x="{left - 6}" y="{y + bar * 0.7:.1f}" text-anchor="end" class="label">'
                    f'{html.escape(str(label))}</text>'
                    f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{bar - 4}" class="bar"/>'
                    f'<text x="{left + length + 4:.1f}" y="{y + bar * 0.7:.1f}" class="value">'
                    f'{fmt.format(value)}</text>')
    return (f'<svg class="plot" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="18" class="title">{html.escape(title)}</text>'
            f'{"".join(rows)}</svg>')


def heatmap(title: str, grid: list[list[int]], cell: int = 40) -> str:
    top = max((v for row in grid for v in row), default=0) or 1
    cells = []
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            shade = int(255 - 215 * v / top)
            cells.append(f'<rect x="{c * cell}" y="{30 + r * cell}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="rgb({shade},{shade},255)"><title>{v}</title></rect>')
    size = len(grid) * cell
    return (f'<svg class="plot" role="img" aria-label="{html.escape(title)}" width="{max(size, 420)}" '
            f'height="{size + 30}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="18" class="title">{html.escape(title)}</text>'
            f'{"".join(cells)}</svg>')


def render_html(out: str, figures: dict) -> str:
    by_task: dict[str, int] = {}
    for r in figures["by_task"]:
        by_task[r["task"]] = by_task.get(r["task"], 0) + r["records"]
    by_source: dict[str, int] = {}
    for r in figures["by_task"]:
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["records"]
    plots = [
        bar_chart("Dialogues per task", list(by_task), list(by_task.values())),
        bar_chart("Dialogues per source", list(by_source), list(by_source.values())),
        bar_chart("Counting answers (how often each count is the answer)",
                  [str(c["count"]) for c in figures["counting_answers"]],
                  [c["n"] for c in figures["counting_answers"]]),
        bar_chart("Empty-answer rate per source and task", [f'{r["source"]} / {r["task"]}' for r in figures["by_task"]],
                  [r["empty_answer_rate"] for r in figures["by_task"]], fmt="{:.1%}"),
        bar_chart("Boxes per dialogue", [f'{r["source"]} / {r["task"]}' for r in figures["by_task"]],
                  [r["boxes_per_dialogue"] for r in figures["by_task"]], fmt="{:.2f}"),
        bar_chart("Box area (share of the image)",
                  [f'{b["area_from"]:.1f}-{b["area_to"]:.1f}' for b in figures["box_area_histogram"]],
                  [b["n"] for b in figures["box_area_histogram"]]),
        bar_chart("Box aspect ratio (log2 width/height)",
                  [str(b["log2_bucket"]) for b in figures["box_aspect_log2_histogram"]],
                  [b["n"] for b in figures["box_aspect_log2_histogram"]]),
        heatmap("Where box centres fall (8x8 grid over the image)", figures["box_centre_heatmap_8x8"]),
        bar_chart("Top predicates asked about", [f'{p["predicate"]} ({p["task"]})' for p in figures["top_predicates"]],
                  [p["n"] for p in figures["top_predicates"]]),
        bar_chart("Top categories asked about", [f'{c["category"]} ({c["task"]})' for c in figures["top_categories"]],
                  [c["n"] for c in figures["top_categories"]]),
        bar_chart("Template usage (top 25)", [t["template_id"] for t in figures["template_usage"][:25]],
                  [t["n"] for t in figures["template_usage"][:25]], width=760),
    ]
    boot = figures.get("bootstrap")
    if boot:
        plots += [
            bar_chart("Bootstrap: pairs surviving at each lambda", [f'{x["lambda"]:.1f}' for x in boot["survival_curve"]],
                      [x["pairs"] for x in boot["survival_curve"]]),
            bar_chart("Bootstrap: IoU of re-grounded boxes",
                      [f'{b["iou_from"]:.1f}-{b["iou_to"]:.1f}' for b in boot["iou_histogram"]],
                      [b["n"] for b in boot["iou_histogram"]]),
            bar_chart("Bootstrap: description length (words)", [str(w["words"]) for w in boot["description_words"]],
                      [w["n"] for w in boot["description_words"]]),
        ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rcforge report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 2em; }}
.title {{ font: bold 14px system-ui, sans-serif; }} .label, .value {{ font: 11px system-ui, sans-serif; }}
.bar {{ fill: #4363d8; }}
</style></head><body>
<h1>rcforge report</h1>
<p>{figures["dialogues"]:,} dialogues, {figures["boxes"]:,} boxes{
    f', {boot["candidates"]:,} bootstrap candidates ({boot["format_error_rate"]:.1%} format errors, '
    f'{boot["unreadable_image_rate"]:.1%} on unreadable images)' if boot else ''
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
