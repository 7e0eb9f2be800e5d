from cofi.data.world import LIST_OPS, WorldSpec, build_world, vocabulary


def test_same_seed_gives_identical_data(tiny_spec):
    assert build_world(tiny_spec) == build_world(tiny_spec)


def test_other_seed_gives_other_data(tiny_spec):
    other = WorldSpec(**{**tiny_spec.__dict__, "seed": tiny_spec.seed + 1})
    assert build_world(other)["reason_test"] != build_world(tiny_spec)["reason_test"]


def test_held_out_items_never_trained(tiny_world):
    train_prompts = {(r["instruction"], r["input"]) for r in tiny_world["versatility_train"]}
    for skill in ("reason", "instruct"):
        test, val = ({(r["instruction"], r["input"]) for r in tiny_world[f"{skill}_{s}"]} for s in ("test", "val"))
        assert not test & train_prompts and not val & train_prompts and not test & val
    rotate = {s: {r["input"] for r in tiny_world[f"rotate_{s}"]} for s in ("train", "val", "test")}
    assert not rotate["test"] & rotate["train"] and not rotate["val"] & rotate["train"] and not rotate["test"] & rotate["val"]


def test_vocabulary_covers_every_record(tiny_spec, tiny_world):
    words = set(vocabulary(tiny_spec))
    for records in tiny_world.values():
        for r in records:
            text = " ".join([r["instruction"], r["input"], r["output"], *r.get("choices", [])])
            assert set(text.split()) <= words


def test_answers_are_correct(tiny_world):
    for r in tiny_world["reason_test"]:
        assert int(r["output"].replace(" ", "")) == sum(int(d) for d in r["input"].split())
    for r in tiny_world["rotate_test"]:
        items = r["input"].split()
        assert r["output"].split() == items[1:] + items[:1]
    for r in tiny_world["know_test"]:
        assert r["choices"][r["answer"]] == r["output"] and len(set(r["choices"])) == 4


def test_speciality_reuses_the_same_entities_and_tokens(tiny_world):
    know_entities = {r["input"] for r in tiny_world["know_test"]}
    assert {r["input"] for r in tiny_world["bio_train"]} == know_entities
    instruct_tokens = {t for r in tiny_world["versatility_train"] if r["instruction"] in LIST_OPS for t in r["input"].split()}
    assert {t for r in tiny_world["rotate_train"] for t in r["input"].split()} <= instruct_tokens


def test_the_world_writes_the_splits_it_declares(tiny_world):
    from cofi.data.world import SPLITS

    assert set(tiny_world) == set(SPLITS)


def test_every_word_a_task_uses_is_read_and_written_by_the_base_models_mixture(tiny_spec):
    """The copy items expose every word (bio's jobs and cities, the words bio and rotate among them) as input
    and as output; with copy_train 0 the older world comes back item for item, those words unseen."""
    from cofi.data.world import CITIES, JOBS

    world = build_world(tiny_spec)
    assert tiny_spec.copy_train > 0
    read = {w for r in world["versatility_train"] for w in (r["instruction"] + " " + r["input"]).split()}
    written = {w for r in world["versatility_train"] for w in r["output"].split()}
    task_words = {w for split in ("bio_train", "rotate_train") for r in world[split]
                  for w in " ".join([r["instruction"], r["input"], r["output"]]).split()} - {"="}
    assert task_words <= read & written
    copies = [r for r in world["versatility_train"] if r["instruction"] == "copy"]
    assert len(copies) == tiny_spec.copy_train and all(r["input"] == r["output"] for r in copies)

    older = build_world(WorldSpec(**{**tiny_spec.__dict__, "copy_train": 0}))
    for split in older:  # everything but the copy items is the same world
        kept = [r for r in world[split] if r["instruction"] != "copy"]
        assert sorted(map(str, kept)) == sorted(map(str, older[split])), split
    seen = {w for r in older["versatility_train"] for w in " ".join([r["instruction"], r["input"], r["output"]]).split()}
    assert not seen & ({"bio", "rotate", "copy"} | set(JOBS) | set(CITIES))
