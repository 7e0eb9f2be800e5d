import json

import pytest

from cofi.data.records import DataError, load_records, read_jsonl, write_jsonl

GOOD = {"instruction": "color", "input": "e01", "output": "red"}


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_valid_file_loads_through_datasets(tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(GOOD), "", json.dumps({"instruction": "x", "output": "y"})])
    dataset = load_records(path)
    assert len(dataset) == 2 and dataset[1]["input"] == ""
    assert dataset.column_names == ["instruction", "input", "output"]


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), '{"instruction": "color", "input": '])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_missing_field_names_field_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), json.dumps(GOOD), json.dumps({"instruction": "x"})])
    with pytest.raises(DataError, match=r"bad\.jsonl:3: missing field 'output'"):
        read_jsonl(path)


def test_wrong_field_type(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps({**GOOD, "output": 3})])
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'output' must be a string"):
        read_jsonl(path)


def test_line_that_is_not_an_object(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected a JSON object"):
        read_jsonl(path)


def test_empty_dataset(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DataError, match=r"empty\.jsonl: the dataset is empty"):
        read_jsonl(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_multiple_choice_answer_as_index_or_text(tmp_path):
    items = [{**GOOD, "choices": ["blue", "red"], "answer": 1}, {**GOOD, "choices": ["red", "blue"], "answer": "red"}]
    path = tmp_path / "mc.jsonl"
    write_jsonl(path, items)
    assert [r["answer"] for r in read_jsonl(path, multiple_choice=True)] == [1, 0]


@pytest.mark.parametrize(
    "item, message",
    [
        ({**GOOD, "choices": ["red"], "answer": 0}, "at least two strings"),
        ({**GOOD, "answer": 0}, "at least two strings"),
        ({**GOOD, "choices": ["red", "blue"], "answer": 2}, "'answer' must be an index"),
        ({**GOOD, "choices": ["red", "blue"], "answer": "green"}, "'answer' must be an index"),
    ],
)
def test_bad_multiple_choice_items(tmp_path, item, message):
    path = tmp_path / "mc.jsonl"
    write_jsonl(path, [item])
    with pytest.raises(DataError, match=rf"mc\.jsonl:1: .*{message}"):
        read_jsonl(path, multiple_choice=True)
