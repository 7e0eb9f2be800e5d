"""Conversation records (``messages``, ShareGPT ``conversations``): read at load, prompted through the chat template,
the loss on every assistant turn and nowhere else."""

import copy
import json

import pytest

from cofi.data.prompts import IGNORE_INDEX, Prompter
from cofi.data.records import DataError, load_records, read_jsonl
from cofi.errors import InputError

TALK = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say a"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "Now the cat"},
        {"role": "assistant", "content": "the cat"}]
SHAREGPT = [{"from": {"user": "human", "assistant": "gpt"}.get(t["role"], t["role"]), "value": t["content"]}
            for t in TALK]


def write(path, *records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def labelled_spans(example: dict) -> list[list[int]]:
    """The runs of consecutive positions whose labels count, as token ids."""
    spans, current = [], []
    for token, label in zip(example["input_ids"], example["labels"]):
        if label == IGNORE_INDEX:
            spans, current = (spans + [current] if current else spans), []
        else:
            assert label == token
            current.append(token)
    return spans + [current] if current else spans


def test_messages_and_sharegpt_records_load_as_the_same_conversation(tmp_path):
    ours = read_jsonl(write(tmp_path / "m.jsonl", {"messages": TALK}, {"conversations": SHAREGPT}))
    assert ours[0] == ours[1] == {"instruction": "Now the cat", "input": "", "output": "the cat", "messages": TALK}
    # a file mixing both kinds of record keeps every column through datasets
    plain = {"instruction": "Say b", "input": "", "output": "b"}
    loaded = load_records(write(tmp_path / "mixed.jsonl", plain, {"messages": TALK}))
    assert loaded[0]["messages"] is None and loaded[1]["messages"] == TALK and loaded[0]["output"] == "b"


@pytest.mark.parametrize("record, message", [
    ({"messages": TALK, "conversations": SHAREGPT}, "both 'messages' and 'conversations'"),
    ({"messages": TALK, "output": "x"}, "'messages' beside 'output'"),
    ({"messages": []}, "must be a non-empty list of turns"),
    ({"messages": [{"role": "user"}]}, r"messages\[0\]: expected \{'role': str, 'content': str\}"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "function_call", "value": "{}"}]},
     r"conversations\[1\]: from 'function_call' is not one of system, human, user, gpt, assistant"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "role 'tool' is not one of system, user, assistant"),
    ({"messages": TALK[1:2] + TALK[1:3]}, r"messages\[1\] is a user turn where an assistant turn belongs"),
    ({"messages": TALK[:2] + [TALK[0]] + TALK[2:3]}, r"messages\[2\] is a system turn where an assistant turn"),
    ({"messages": TALK[:4]}, "must end with an assistant turn"),
    ({"messages": TALK[:1]}, "must end with an assistant turn"),
])
def test_bad_conversations_are_refused_with_file_line_and_turn(tmp_path, record, message):
    path = write(tmp_path / "bad.jsonl", {"instruction": "ok", "output": "ok"}, record)
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{message}"):
        read_jsonl(path)


@pytest.mark.parametrize("kind", [{"multiple_choice": True}, {"verifiable": True}])
def test_a_conversation_is_not_a_multiple_choice_or_checked_item(tmp_path, kind):
    with pytest.raises(DataError, match=r"c\.jsonl:1: 'messages': conversations are training or generation data"):
        read_jsonl(write(tmp_path / "c.jsonl", {"messages": TALK[1:3]}), **kind)


@pytest.mark.parametrize("system", [None, "Be brief."])
def test_a_single_exchange_as_messages_is_the_instruction_record_token_for_token(chat_tokenizer, tokenizer, system):
    chat = Prompter(chat_tokenizer, chat=True, system=system)
    messages = {"messages": [{"role": "user", "content": "Say the"}, {"role": "assistant", "content": "the cat"}],
                "instruction": "Say the", "input": "", "output": "the cat"}  # as read_jsonl gives it
    single = {"instruction": "Say the", "input": "", "output": "the cat"}
    for mask in (True, False):
        assert chat.example(messages, mask, 200) == chat.example(single, mask, 200)
    assert chat.prompt_ids(messages) == chat.prompt_ids(single)
    words = Prompter(tokenizer, "{instruction} {input} =")  # a string template reads its instruction and output
    word_record = {"messages": [{"role": "user", "content": "rotate"}, {"role": "assistant", "content": "b c a"}],
                   "instruction": "rotate", "input": "", "output": "b c a"}
    assert words.example(word_record, True, 32) == words.example({k: word_record[k] for k in single}, True, 32)


def test_the_loss_falls_on_every_assistant_turn_and_its_end_of_turn_only(chat_tokenizer):
    record = {"messages": TALK, "instruction": "Now the cat", "input": "", "output": "the cat"}
    prompter = Prompter(chat_tokenizer, chat=True)
    example = prompter.example(record, mask_prompt=True, max_len=500)
    end = "<|im_end|>"
    assert [chat_tokenizer.decode(span) for span in labelled_spans(example)] == ["a" + end, "the cat" + end]
    # the tokens are the template's own rendering of the whole conversation (less its trailing newline)
    assert chat_tokenizer.decode(example["input_ids"]) == chat_tokenizer.apply_chat_template(
        TALK, tokenize=False).rstrip("\n")
    unmasked = prompter.example(record, mask_prompt=False, max_len=500)
    assert unmasked["input_ids"] == example["input_ids"] and unmasked["labels"] == unmasked["input_ids"]
    cut = prompter.example(record, mask_prompt=True, max_len=10)
    assert cut == {"input_ids": example["input_ids"][:10], "labels": example["labels"][:10]}
    # the prompt of a generation item is everything before its last assistant turn
    assert prompter.text(record) == chat_tokenizer.apply_chat_template(TALK[:-1], tokenize=False,
                                                                      add_generation_prompt=True)


def test_prompt_system_replaces_a_conversations_own_system_turn(chat_tokenizer):
    record = {"messages": TALK, "instruction": "Now the cat", "input": "", "output": "the cat"}
    own, configured = Prompter(chat_tokenizer, chat=True), Prompter(chat_tokenizer, chat=True, system="Be kind.")
    assert "Be terse." in own.text(record) and "Be kind." not in own.text(record)
    assert configured.text(record) == chat_tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be kind."}] + TALK[1:-1], tokenize=False, add_generation_prompt=True)
    spans = labelled_spans(configured.example(record, mask_prompt=True, max_len=500))
    assert [chat_tokenizer.decode(span) for span in spans] == ["a<|im_end|>", "the cat<|im_end|>"]


def test_a_template_that_rewrites_earlier_turns_is_refused(chat_tokenizer):
    rewriting = copy.deepcopy(chat_tokenizer)
    # earlier assistant turns lose their content once a later turn follows, as templates that drop reasoning do
    rewriting.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['role'] == 'assistant' and not loop.last %}-{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    record = {"messages": TALK, "instruction": "Now the cat", "input": "", "output": "the cat"}
    with pytest.raises(InputError, match="renders a conversation's earlier turns differently once turn 4 follows"):
        Prompter(rewriting, chat=True).example(record, mask_prompt=True, max_len=500)


def test_a_string_template_takes_one_exchange_without_a_system_turn(tokenizer):
    words = Prompter(tokenizer, "{instruction} {input} =")
    for turns in (TALK, TALK[1:]):
        with pytest.raises(InputError, match="needs prompt.chat_template: true"):
            words.text({"messages": turns, "instruction": "", "input": "", "output": ""})


def test_a_training_file_of_conversations_tokenizes_through_datasets(chat_tokenizer, tmp_path):
    """The finetune job's path: load_records (datasets), then tokenize_dataset; plain records beside conversations."""
    from cofi.training.loop import tokenize_dataset

    plain = {"instruction": "Say b", "input": "", "output": "b"}
    records = load_records(write(tmp_path / "train.jsonl", plain, {"messages": TALK}, {"conversations": SHAREGPT}))
    prompter = Prompter(chat_tokenizer, chat=True)
    examples = tokenize_dataset(records, prompter, mask_prompt=True, max_len=500)
    assert [len(labelled_spans(e)) for e in examples] == [1, 2, 2]
    assert examples[1] == examples[2] == prompter.example(read_jsonl(tmp_path / "train.jsonl")[1], True, 500)
