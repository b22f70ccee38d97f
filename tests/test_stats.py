"""rcforge stats: the DuckDB figures against an independent count over the shards with pyarrow."""

import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from rcforge.cli.main import main


@pytest.fixture
def built(sample_build):
    return sample_build


def test_stats_match_an_independent_count(built, tmp_path):
    file = tmp_path / "stats.json"
    assert main(["stats", str(built), "--json", str(file)]) == 0
    figures = json.loads(file.read_text())
    rows = []
    for part in sorted((built / "dialogues").glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    assert figures["dialogues"] == len(rows)
    assert figures["boxes"] == sum(len(r["boxes"]) for r in rows)
    by_task = Counter((r["source"], r["task"]) for r in rows)
    assert {(f["source"], f["task"]): f["records"] for f in figures["by_task"]} == dict(by_task)
    chars = Counter()
    for r in rows:
        chars[(r["source"], r["task"])] += sum(len(t["value"]) for t in r["conversations"])
    assert {(f["source"], f["task"]): f["characters"] for f in figures["by_task"]} == dict(chars)
    counting = Counter(int(re.search(r"\d+", r["conversations"][1]["value"]).group()) for r in rows
                       if r["task"] == "counting")
    # every count from 0 to the largest is a bin, the empty ones at 0
    assert [c["count"] for c in figures["counting_answers"]] == list(range(max(counting) + 1))
    assert {c["count"]: c["n"] for c in figures["counting_answers"] if c["n"]} == dict(counting)
    assert [b["area_from"] for b in figures["box_area_histogram"]] == [i / 10 for i in range(10)]
    assert [b["log2_bucket"] for b in figures["box_aspect_log2_histogram"]] == list(range(-4, 5))
    assert sum(map(sum, figures["box_centre_heatmap_8x8"])) == figures["boxes"]
    assert sum(b["n"] for b in figures["box_area_histogram"]) == figures["boxes"]
    assert sum(t["n"] for t in figures["template_usage"]) == len(rows)


def test_token_counts_with_a_tokenizer_built_offline(built, tmp_path):
    """A word-level tokenizer trained here (no download): tokens must equal whitespace words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rows = []
    for part in sorted((built / "dialogues").glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator((t["value"] for r in rows for t in r["conversations"]),
                            trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    folder = tmp_path / "tok"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    file = tmp_path / "stats.json"
    assert main(["stats", str(built), "--json", str(file), "--tokenizer", str(folder)]) == 0
    figures = json.loads(file.read_text())
    expected = Counter()
    for r in rows:
        expected[(r["source"], r["task"])] += sum(len(t["value"].split()) for t in r["conversations"])
    assert {(f["source"], f["task"]): f["tokens"] for f in figures["by_task"]} == dict(expected)


def test_top_predicates_and_categories_follow_the_provenance(built, tmp_path):
    file = tmp_path / "stats.json"
    assert main(["stats", str(built), "--json", str(file)]) == 0
    figures = json.loads(file.read_text())
    records = {}
    for part in sorted((built / "images").glob("*/part-*.parquet")):
        for r in pq.read_table(part).to_pylist():
            records[r["key"]] = r
    predicates, categories = Counter(), Counter()
    for part in sorted((built / "dialogues").glob("part-*.parquet")):
        for d in pq.read_table(part).to_pylist():
            rec = records[d["key"]]
            for p in d["provenance"]:
                kind, _, ident = p.partition(":")
                # ids the record does not hold (PointQA names VG objects of another source) are not counted
                if kind == "relation":
                    for rel in (r for r in rec["relations"] if r["id"] == int(ident)):
                        predicates[(d["task"], rel["predicate"])] += 1
                elif kind == "object":
                    for obj in (o for o in rec["objects"] if o["id"] == int(ident)):
                        categories[(d["task"], obj["names"][0])] += 1
    assert {(p["task"], p["predicate"]): p["n"] for p in figures["top_predicates"]} == \
        dict(sorted(predicates.items(), key=lambda kv: -kv[1])[:25])
    got = {(c["task"], c["category"]): c["n"] for c in figures["top_categories"]}
    assert len(got) == min(25, len(categories)) and all(categories[k] == n for k, n in got.items())


def test_report_plots_have_axes_and_fitting_labels_and_say_when_empty():
    from rcforge.inspect.report import CHAR_PX, bar_chart, render_html

    label = "visual_genome / flickr_grounded_caption_with_a_long_name"
    svg = bar_chart("Boxes", [label, "b"], [3, 0], axis="boxes per dialogue (mean)", category="source / task")
    left = float(re.search(r'<rect x="(\d+)"', svg).group(1))
    assert left >= CHAR_PX * len(label)  # the longest label fits left of the bars: never clipped
    assert ">boxes per dialogue (mean)</text>" in svg and ">source / task</text>" in svg  # axis titles, unit
    assert svg.count('class="tick"') >= 2 and ">b</text>" in svg  # ticks; a zero bin keeps its row
    assert bar_chart("Empty", [], [], axis="x", category="y", empty="no counting dialogues") == \
        '<p class="empty"><b>Empty</b>: no counting dialogues.</p>'
    figures = {"dialogues": 0, "boxes": 0, "by_task": [], "box_area_histogram": [], "box_aspect_log2_histogram": [],
               "box_centre_heatmap_8x8": [[0] * 8 for _ in range(8)], "counting_answers": [], "template_usage": [],
               "top_predicates": [], "top_categories": [], "bootstrap": None,
               "negatives": {"total": 0, "by_task_and_source": [], "by_basis": []}}
    page = render_html("OUT", figures)
    assert "<svg" not in page and page.count('<p class="empty">') == 15  # one line per section, no empty chart
