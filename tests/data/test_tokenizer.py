from transformers import AutoTokenizer

from cofi.data.world import vocabulary


def test_round_trip_through_a_saved_directory(tokenizer, tiny_world, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for records in tiny_world.values():
        for r in records[:20]:
            text = f"{r['instruction']} {r['input']} = {r['output']}"
            ids = reloaded.encode(text, add_special_tokens=False)
            assert reloaded.unk_token_id not in ids
            assert reloaded.decode(ids) == " ".join(text.split())
            assert ids == tokenizer.encode(text, add_special_tokens=False)


def test_special_tokens(tokenizer, tiny_spec):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert len(tokenizer) == len(vocabulary(tiny_spec)) + 4
    assert tokenizer.encode("nonsense", add_special_tokens=False) == [tokenizer.unk_token_id]
