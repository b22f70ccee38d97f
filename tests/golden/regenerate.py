"""Rewrite the golden dialogues of the bundled sample: python tests/golden/regenerate.py

The golden file holds every dialogue of `recipes/sample.yaml` (id, template id, conversations, boxes), so that a
template, task or coordinate change shows up as a diff in review. Regenerate after an intended change.
"""

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "sample_dialogues.jsonl"


def sample_dialogues(out: str) -> list[dict]:
    import pyarrow.parquet as pq

    from rcforge.pipelines.build import build
    from rcforge.recipe.tree import load_recipe

    build(load_recipe(str(REPO / "recipes" / "sample.yaml")), out, progress=False)
    rows = []
    for part in sorted(Path(out, "dialogues").glob("part-*.parquet")):
        rows.extend(pq.read_table(part, columns=["id", "template_id", "conversations", "boxes"]).to_pylist())
    return sorted(rows, key=lambda r: r["id"])


def dumps(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(dumps(sample_dialogues(tmp)))
    print(f"wrote {GOLDEN}", file=sys.stderr)
