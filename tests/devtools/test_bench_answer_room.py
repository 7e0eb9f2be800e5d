"""bench-answer-room on the tiny chat model: each length scored on the same items, paired with the first."""

import json


def test_the_answer_room_bench_scores_each_length_on_the_same_items(tmp_path):
    from cofi.devtools.bench import answer_room
    from cofi.models.gguf import import_gguf

    from tiny_gguf import write_tiny_gguf

    write_tiny_gguf(tmp_path / "tiny.gguf")
    import_gguf(tmp_path / "tiny.gguf", tmp_path / "model", log=lambda _: None)
    (tmp_path / "data").mkdir()
    items = [{"instruction": f"Add {a} and {a}", "input": "", "output": str(2 * a)} for a in range(1, 7)]
    (tmp_path / "data" / "reason_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    table = answer_room(str(tmp_path / "model"), str(tmp_path / "data"), "reason", [1, 4], batch_size=4,
                        precision="fp32")
    assert list(table["max_new_tokens"]) == ["1 (set)", "4 (set)"]
    assert table["vs first"][0] == "+0.0 [+0.0, +0.0]" and table["right only here / only first"][0] == "0 / 0"
    assert all(0 <= n <= len(items) for n in table["answers at the length"])
    assert table["answers at the length"][0] >= table["answers at the length"][1]  # a longer room cuts fewer
