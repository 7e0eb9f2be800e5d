"""The pieces a real chat model goes through: chat-template prompts, the chat suites, IFEval checks,
the number metric."""

import datetime
import json

import pytest

from cofi.evaluation import metrics
from cofi.data.chat_suites import FACT_QUESTIONS, SPLITS, SUITE_TYPES, TASK_TYPES, ChatSuitesSpec, build
from cofi.data.records import DataError, read_jsonl
from cofi.evaluation.instructions import follows
from cofi.data.prompts import IGNORE_INDEX, Prompter


@pytest.fixture(scope="module")
def suites():
    return build(ChatSuitesSpec(seed=0, test_items=20, countries=6, dates_train=50, replay_items=60))


def test_chat_prompts_are_the_templates_user_turn_and_responses_end_with_its_end_of_turn(chat_tokenizer):
    prompter = Prompter(chat_tokenizer, chat=True)
    record = {"instruction": "Say the", "input": "cat", "output": "the cat"}
    expected = chat_tokenizer.apply_chat_template([{"role": "user", "content": "Say the\n\ncat"}], tokenize=False,
                                                  add_generation_prompt=True)
    assert prompter.text(record) == expected
    example = prompter.example(record, mask_prompt=True, max_len=200)
    end = chat_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert example["input_ids"][-1] == end and example["labels"][-1] == end
    n_prompt = len(prompter.prompt_ids(record))
    assert example["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert chat_tokenizer.decode(example["input_ids"][n_prompt:]) == "the cat<|im_end|>"
    # the whole example is the template's own rendering of the conversation (up to its trailing newline)
    full = chat_tokenizer.apply_chat_template([{"role": "user", "content": "Say the\n\ncat"},
                                               {"role": "assistant", "content": "the cat"}], tokenize=False)
    assert chat_tokenizer.decode(example["input_ids"]) == full.rstrip("\n")
    assert end in prompter.stop_ids and prompter.prompt_lengths([record]) == [n_prompt]


def test_prompt_system_sets_or_empties_the_system_turn(chat_tokenizer):
    """null keeps the template's own default system turn (if it has one); a text replaces it; "" gives an empty one
    (the SmolLM2 template cannot drop the turn, only shorten it). The response still ends with the end-of-turn
    token."""
    record = {"instruction": "Say the", "input": "cat", "output": "the cat"}
    default, empty, short = (Prompter(chat_tokenizer, chat=True, system=s) for s in (None, "", "Be brief."))
    assert "Be brief." in short.text(record) and "Be brief." not in default.text(record)
    assert short.text(record) == chat_tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say the\n\ncat"}], tokenize=False,
        add_generation_prompt=True)
    assert empty.text(record) == chat_tokenizer.apply_chat_template(
        [{"role": "system", "content": ""}, {"role": "user", "content": "Say the\n\ncat"}], tokenize=False,
        add_generation_prompt=True) != default.text(record)
    end = chat_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert empty.example(record, mask_prompt=True, max_len=200)["input_ids"][-1] == end


def test_the_string_template_is_unchanged_for_the_embedded_model(tokenizer):
    prompter = Prompter(tokenizer, "{instruction} {input} =")
    example = prompter.example({"instruction": "rotate", "input": "a b c", "output": "b c a"}, True, 32)
    assert tokenizer.decode(example["input_ids"]) == "<s> rotate a b c = b c a </s>"
    with pytest.raises(ValueError, match="has no chat template"):
        Prompter(tokenizer, chat=True)


def test_the_chat_suites_are_seeded_typed_and_keep_held_out_items_out_of_training(suites):
    assert set(suites) == set(SPLITS)
    assert build(ChatSuitesSpec(seed=0, test_items=20, countries=6, dates_train=50, replay_items=60)) == suites
    assert build(ChatSuitesSpec(seed=1, test_items=20, countries=6, dates_train=50, replay_items=60)) != suites
    assert set(TASK_TYPES) == {"facts", "dates"} and set(SUITE_TYPES) == {"know", "reason", "instruct"}
    asked = lambda split: {r["instruction"] for r in suites[split]}  # noqa: E731
    assert not asked("know_test") & asked("know_val")
    assert len(suites["know_test"]) >= 100 and len(suites["know_val"]) >= 100  # the real study's 100 test items
    replay = asked("versatility_train")
    for split in ("know_test", "know_val", "reason_test", "reason_val", "instruct_test", "instruct_val"):
        assert not asked(split) & replay, split
    assert not asked("reason_test") & asked("reason_val") and not asked("instruct_test") & asked("instruct_val")
    # facts: the same facts, asked in phrasings never trained
    assert not asked("facts_test") & asked("facts_train") and not asked("facts_val") & asked("facts_train")
    assert {r["output"] for r in suites["facts_test"]} <= {r["output"] for r in suites["facts_train"]}
    assert len(suites["facts_test"]) == 6 * len(FACT_QUESTIONS)
    dates = lambda split: {r["output"] for r in suites[split]}  # noqa: E731
    assert not dates("dates_test") & dates("dates_train") and not dates("dates_val") & dates("dates_train")
    for record in suites["dates_test"]:
        day = datetime.date.fromisoformat(record["output"])
        assert str(day.year) in record["input"] and day.strftime("%B") in record["input"]


def test_every_instruction_response_made_here_passes_its_own_checks(suites):
    items = [r for r in suites["versatility_train"] + suites["instruct_test"] if "checks" in r]
    assert len({c["id"] for r in items for c in r["checks"]}) >= 8  # many kinds of format
    assert all(follows(r["output"], r["checks"]) for r in items)
    assert all(metrics.number(r["output"], str(int(r["output"]))) for r in suites["reason_test"])


def test_ifeval_checks_tell_following_from_not_following():
    capitals = [{"id": "change_case:english_capital", "kwargs": {}}]
    assert follows("THE SEA IS CALM TODAY AND THE SKY IS BLUE.", capitals)
    assert not follows("The sea is calm today and the sky is blue.", capitals)
    bullets = [{"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": 2}}]
    assert follows("* one\n* two", bullets) and not follows("* one\n* two\n* three", bullets)
    ending = [{"id": "startend:end_checker", "kwargs": {"end_phrase": "That is all."}}]
    assert follows("Trains are fast. That is all.", ending) and not follows("That is all. Trains are fast.", ending)
    assert not follows("", [{"id": "punctuation:no_comma", "kwargs": {}}])


def test_instruction_items_with_bad_checks_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "instruct.jsonl"
    good = {"instruction": "Write.", "checks": [{"id": "punctuation:no_comma", "kwargs": {}}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "checks": [{"id": "made:up"}]}) + "\n")
    with pytest.raises(DataError, match=r"instruct\.jsonl:2: check id 'made:up'"):
        read_jsonl(path, verifiable=True)
    path.write_text(json.dumps({"instruction": "Write."}) + "\n")
    with pytest.raises(DataError, match=r":1: missing field 'checks'"):
        read_jsonl(path, verifiable=True)
    path.write_text(json.dumps({**good, "checks": [{"id": "startend:end_checker", "kwargs": {"ending": "x"}}]}) + "\n")
    with pytest.raises(DataError, match=r":1: check startend:end_checker: .*ending"):
        read_jsonl(path, verifiable=True)


def test_the_number_metric_compares_the_last_number():
    assert metrics.number("5 + 19 = 24, so 24 coins.", "24") == 1.0
    assert metrics.number("He has 1,200 stamps", "1200") == 1.0
    assert metrics.number("5 + 19 = 22", "24") == 0.0
    assert metrics.number("no idea", "24") == 0.0
    with pytest.raises(ValueError, match="no number"):
        metrics.number("24", "twenty-four")
