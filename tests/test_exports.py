"""`rcforge export KIND`: each trainer's file, read back the way its trainer reads it.

None of the consumers' own loaders installs from the package registries into this environment (LLaMA-Factory and
ms-swift pin their own transformers and training stacks; InternVL and Qwen-VL are not packages). So each file is
loaded with Hugging Face ``datasets`` (what LLaMA-Factory and ms-swift call underneath) or ``json.load`` (Qwen-VL's
finetune.py:243), and checked field by field against the consumer's documented schema and the checks its own code
makes (the file and line are cited at each check).
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from rcforge import cli
from rcforge.core.errors import InputError
from rcforge.inspect.export import KINDS, export


def _rows(out) -> dict[str, dict]:
    return {r["id"]: r
            for p in sorted((out / "dialogues").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()}


def _load(file) -> list[dict]:
    import datasets

    return list(datasets.load_dataset("json", data_files=str(file), split="train"))


def _image_root(out) -> str:
    return json.loads((out / "manifest.json").read_text())["sources"]["visual_genome"]["image_root"]


@pytest.mark.slow  # loads with Hugging Face datasets (a 2 s import)
def test_sharegpt_is_what_llamafactory_reads(sample_build_in, tmp_path):
    sample_build = sample_build_in("qwen2_vl")
    file = tmp_path / "rcforge_sample.json"
    assert cli.main(["export", "sharegpt", str(sample_build), str(file)]) == 0
    rows = _rows(sample_build)
    items = _load(file)
    assert len(items) == len(rows)
    info = json.loads((tmp_path / "dataset_info.json").read_text())["rcforge_sample"]
    # data/README.md:310-346 [LLaMA-Factory ff6d4d1]: sharegpt formatting, a messages and an images column, tags
    assert info == {"file_name": "rcforge_sample.json", "formatting": "sharegpt",
                    "columns": {"messages": "messages", "images": "images"},
                    "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                             "assistant_tag": "assistant"}}
    for item, row in zip(items, rows.values()):  # shard order, row order
        messages = item["messages"]
        # src/llamafactory/data/converter.py:160-177: user/assistant alternate from a user turn, an even count
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
        assert [m["content"] for m in messages] == [t["value"] for t in row["conversations"]]
        # src/llamafactory/data/mm_plugin.py:205: as many images as <image> tokens
        assert sum(m["content"].count("<image>") for m in messages) == len(item["images"]) == 1
        assert item["images"] == [f"{_image_root_of(sample_build, row)}/{row['image']}"]  # absolute by default


@pytest.mark.slow  # a build in a format LLaMA-Factory is paired with
def test_dataset_info_entries_are_merged(sample_build_in, tmp_path):
    sample_build = sample_build_in("qwen2_vl")
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    export("sharegpt", str(sample_build), str(tmp_path / "a.jsonl"))
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(info) == {"mine", "a"} and info["a"]["file_name"] == "a.jsonl"


@pytest.mark.slow  # loads with Hugging Face datasets (a 2 s import)
def test_swift_messages_and_images(sample_build_in, tmp_path):
    sample_build = sample_build_in("qwen2_vl")
    file = tmp_path / "train.jsonl"
    n = export("swift", str(sample_build), str(file), relative=True)
    items = _load(file)
    rows = list(_rows(sample_build).values())
    assert n == len(items) == len(rows)
    for item, row in zip(items, rows):
        # ms-swift docs/source_en/Customization/Custom-dataset.md: "messages" (role/content) and "images" paths
        assert set(item) == {"messages", "images"}
        assert item["messages"][0]["content"].startswith("<image>")
        assert {m["role"] for m in item["messages"]} == {"user", "assistant"}
        assert item["images"] == [f"{row['source']}/{row['image']}"]


@pytest.mark.slow  # loads with Hugging Face datasets (a 2 s import)
def test_internvl_jsonl_and_its_meta_file(sample_build_in, tmp_path):
    sample_build = sample_build_in("internvl")
    file = tmp_path / "rc.jsonl"
    root = os.path.dirname(_image_root(sample_build).rstrip("/"))
    n = export("internvl", str(sample_build), str(file), image_root=root)
    items = _load(file)
    rows = _rows(sample_build)
    vg = [i for i in items if rows[i["id"]]["source"] == "visual_genome"]
    assert len(items) == n and vg
    # internvl_chat/shell/data/*.json: root, annotation (.jsonl, internvl_chat_finetune.py:335), length
    meta = json.loads((tmp_path / "rc_meta.json").read_text())["rc"]
    assert meta == {"root": root, "annotation": str(file), "data_augment": False, "repeat_time": 1, "length": n}
    for item in items:
        row = rows[item["id"]]
        assert (item["width"], item["height"]) == (row["width"], row["height"])
        # internvl_chat_finetune.py:425-429: the image joined to the meta root; <image> in the first human turn
        assert item["conversations"][0]["value"].startswith("<image>\n")
        assert [t["from"] for t in item["conversations"]] == ["human", "gpt"] * (len(item["conversations"]) // 2)
    for item in vg:
        assert os.path.exists(os.path.join(root, item["image"])) or item["image"].endswith("3.jpg")


@pytest.mark.slow
def test_qwen_vl_json_with_its_picture_tag(sample_build_in, tmp_path):
    sample_build = sample_build_in("qwen_vl")
    file = tmp_path / "qwen.json"
    export("qwen_vl", str(sample_build), str(file))
    items = json.loads(file.read_text())  # Qwen-VL finetune.py:243 json.load()s one list
    rows = _rows(sample_build)
    assert len(items) == len(rows)
    for item in items:
        row = rows[item["id"]]
        turns = item["conversations"]
        # finetune.py:130-151: roles are "user" and "assistant", the first from the user
        assert [t["from"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        # README.md:962: "Picture id: <img>img_path</img>\n{your prompt}"
        assert turns[0]["value"] == (f"Picture 1: <img>{_image_root_of(sample_build, row)}/{row['image']}</img>\n"
                                     + row["conversations"][0]["value"].removeprefix("<image>\n"))
        assert all("<image>" not in t["value"] for t in turns)


def _image_root_of(out, row) -> str:
    return json.loads((out / "manifest.json").read_text())["sources"][row["source"]]["image_root"].rstrip("/")


@pytest.mark.parametrize("kind,file,message", [
    ("qwen_vl", "x.jsonl", "must end with .json"),
    ("internvl", "x.json", "must end with .jsonl"),
    ("swift", "x.txt", "must end with .jsonl"),
    ("llava", "x.csv", "must end with .json or .jsonl"),
])
def test_a_file_form_the_trainer_does_not_read_is_refused(sample_build, tmp_path, kind, file, message):
    with pytest.raises(InputError, match=message):
        export(kind, str(sample_build), str(tmp_path / file))


def test_images_outside_the_image_root_are_left_out_and_counted(sample_build, tmp_path, capsys):
    vg_root = _image_root(sample_build)
    n = export("llava", str(sample_build), str(tmp_path / "vg.jsonl"), image_root=vg_root)
    rows = _rows(sample_build)
    assert n == sum(1 for r in rows.values() if _image_root_of(sample_build, r) == vg_root.rstrip("/"))
    assert "not under --image-root" in capsys.readouterr().err


def test_every_kind_is_listed_in_the_command_help():
    assert set(KINDS) == {"llava", "sharegpt", "swift", "internvl", "qwen_vl", "shikra_jsonl", "nextchat", "ferret",
                          "groma", "swift_objects"}


def test_every_kind_declares_registered_formats_and_every_format_but_kosmos2_has_a_kind():
    """Kosmos-2 has no template in LLaMA-Factory or ms-swift (nor a fine-tune format of its own that rcforge
    writes): its build is read from the shards."""
    from rcforge.render import coordinates

    declared = {fmt for kind in KINDS.values() for fmt in kind.coordinates}
    assert declared == set(coordinates.REGISTRY.names()) - {"kosmos2"}
    assert all(set(kind.single_round) <= set(kind.coordinates) for kind in KINDS.values())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_build_in_a_format_the_trainer_does_not_read_is_refused_before_writing(sample_build, tmp_path, capsys,
                                                                                  kind):
    """A Qwen-VL file with Pink boxes in its answers would teach the wrong format without a word: an export of a
    build in a format the kind's trainer does not read is refused, names the formats to build with, and writes
    nothing."""
    file = tmp_path / ("x.json" if ".json" in KINDS[kind].suffixes else "x.jsonl")
    if "pink" in KINDS[kind].coordinates:
        assert cli.main(["export", kind, str(sample_build), str(file)]) == 0
        return
    assert cli.main(["export", kind, str(sample_build), str(file)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'pink' format" in err
    assert all(f"--coordinates {fmt}" in err for fmt in KINDS[kind].coordinates)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # five more builds of the sample
@pytest.mark.parametrize("kind, fmt", [("qwen_vl", "qwen_vl"), ("internvl", "internvl"), ("swift", "qwen2_5_vl"),
                                       ("sharegpt", "qwen3_vl"), ("llava", "shikra")])
def test_a_build_in_the_trainers_format_exports(sample_build_in, tmp_path, kind, fmt):
    file = tmp_path / ("x.json" if ".json" in KINDS[kind].suffixes else "x.jsonl")
    assert export(kind, str(sample_build_in(fmt)), str(file)) == len(_rows(sample_build_in(fmt)))


@pytest.mark.parametrize("kind, fmt", [("sharegpt", "florence2"), ("sharegpt", "kosmos2"), ("swift", "kosmos2"),
                                       ("llava", "kosmos2")])
def test_a_pairing_the_trainer_cannot_train_is_refused(sample_build, tmp_path, capsys, kind, fmt):
    """LLaMA-Factory has no Florence-2 or Kosmos-2 template, ms-swift no Kosmos-2 one: refused in one line that
    says where the build can go instead (the manifest says which format the build printed)."""
    import json

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["build"]["coordinates"] = fmt
    (out / "manifest.json").write_text(json.dumps(manifest))
    target = tmp_path / ("x.jsonl" if kind == "swift" else "x.json")
    assert cli.main(["export", kind, str(out), str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{fmt!r} format" in err and not target.exists(), err
    assert ("export it with swift" in err) if fmt == "florence2" else ("no export kind trains kosmos2" in err)


def test_a_single_round_trainer_gets_every_round_as_an_item(sample_build, tmp_path, capsys):
    """ms-swift's Florence-2 template trains the last round of an item only: each round becomes an item of its
    own (starting with the image), so no round is lost."""
    import json

    from rcforge.inspect.export import rounds

    from conftest import copy_of

    row = {"id": "d1", "source": "s", "image": "i.jpg", "task": "t", "width": 4, "height": 4, "conversations": [
        {"from": "human", "value": "<image>\nq1"}, {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}
    assert [r["conversations"] for r in rounds(row)] == [
        [{"from": "human", "value": "<image>\nq1"}, {"from": "gpt", "value": "a1"}],
        [{"from": "human", "value": "<image>\nq2"}, {"from": "gpt", "value": "a2"}]]
    assert [r["id"] for r in rounds(row)] == ["d1#0", "d1#1"]

    out = copy_of(sample_build, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["build"]["coordinates"] = "florence2"
    (out / "manifest.json").write_text(json.dumps(manifest))
    target = tmp_path / "x.jsonl"
    rows = _rows(out)
    assert cli.main(["export", "swift", str(out), str(target)]) == 0
    items = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(items) == sum(len(r["conversations"]) // 2 for r in rows.values())
    assert all(len(i["messages"]) == 2 and i["messages"][0]["content"].startswith("<image>") for i in items)
    assert "one item per round" in capsys.readouterr().err


def test_the_readme_pairs_each_format_with_the_kinds_that_train_it():
    """README's family table: the export column of each format is exactly the kinds that declare it."""
    import re

    from rcforge.inspect.export import kinds_for
    from rcforge.render import coordinates

    from conftest import REPO

    found = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.replace("\\|", "\x00").split("|")]
        if len(cells) > 5 and cells[2].startswith("`") and not cells[2].startswith("`coordinates`"):
            found[cells[2].split("`")[1]] = cells[4]
    assert set(found) == set(coordinates.FORMATTERS)
    for fmt, cell in found.items():
        assert set(re.findall(r"`(\w+)`", cell)) == set(kinds_for(fmt)), (fmt, cell)
        for kind in kinds_for(fmt):
            assert (fmt in KINDS[kind].single_round) == ("one round per item" in cell), (fmt, cell)


def test_a_turn_with_a_foreign_role_is_refused_naming_the_dialogue(sample_build, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    shard = sorted((out / "dialogues").glob("part-*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["conversations"][1]["from"] = "system"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    target = tmp_path / "x.json"
    assert cli.main(["export", "llava", str(out), str(target)]) == 1
    err = capsys.readouterr().err
    assert f"dialogue {rows[0]['id']!r} turn 2 has role 'system'" in err and not target.exists()


@pytest.mark.parametrize("existing, says", [("{bad", "is not valid JSON"), ("[1, 2]", "is not a JSON object")])
def test_an_unusable_dataset_info_is_refused_before_anything_is_written(sample_build_in, tmp_path, capsys, existing,
                                                                         says):
    out = sample_build_in("qwen2_vl")
    (tmp_path / "dataset_info.json").write_text(existing)
    assert cli.main(["export", "sharegpt", str(out), str(tmp_path / "data.json")]) == 1
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_info.json"]  # no data file, the user's kept
    assert (tmp_path / "dataset_info.json").read_text() == existing


def test_a_build_made_before_the_mask_columns_still_exports(sample_build, tmp_path):
    """Shards written before the groups and masks columns existed export to every kind that does not need them."""
    import pyarrow.parquet as pq

    from rcforge import cli

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    for shard in out.glob("dialogues/part-*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.drop_columns(["groups", "masks"]), shard)
    assert cli.main(["export", "llava", str(out), str(tmp_path / "old.json")]) == 0
    assert len(json.loads((tmp_path / "old.json").read_text())) == pq.read_table(
        sorted(out.glob("dialogues/part-*.parquet"))[0]).num_rows
