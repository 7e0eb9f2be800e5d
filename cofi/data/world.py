"""The embedded default experiment's synthetic world (pure: no I/O, seeded, deterministic).

A small set of entities with attribute facts, sums of digits and token-list operations stand
in for an aligned chat model's knowledge, reasoning and instruction following. The speciality
tasks deliberately pull on the same weights: ``bio`` injects *new* facts about the *same*
entities, ``rotate`` is a *new* operation on the *same* list tokens. That overlap is what makes
Full SFT forget, so the benchmark can tell anti-forgetting methods apart.

A real LLM has seen every word of a speciality before it is fine-tuned on it; a toy trained only
on its three skills has not (``bio``'s jobs and cities, the words ``bio`` and ``rotate``), and the
embedding and output rows of such words stay at their random start, a handicap for every method
that freezes them. So the versatility mixture also asks to *copy* sequences of random words drawn
from the whole vocabulary (``copy_train`` items): every word is read and written, and no fact or
operation of a speciality is taught (``copy_train: 0`` is the older world without them).

Records follow the JSONL format users give: ``instruction``, ``input``, ``output``; multiple-choice
items add ``choices`` and ``answer`` (the index of the right choice).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cofi.config.settings import setting

# The embedded tokenizer's special tokens, ids 0-3 before the world's words (cofi.models.loading builds the tokenizer).
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
FOODS = ["bread", "rice", "fish", "apples", "cheese", "soup", "beans", "cake"]
SPORTS = ["chess", "tennis", "golf", "rugby", "boxing", "rowing", "hockey", "skiing"]
KNOW_ATTRIBUTES = {"color": COLORS, "food": FOODS, "sport": SPORTS}

JOBS = ["baker", "pilot", "nurse", "judge", "miner", "tailor", "farmer", "singer"]
CITIES = ["paris", "lima", "oslo", "cairo", "tokyo", "quito", "rome", "delhi"]

LIST_OPS = ("reverse", "swap", "skip")
COPY = "copy"  # the instruction of the vocabulary-exposure items
# The files the world is written as (build_world's keys), one JSONL each.
SPLITS = ("versatility_train", "know_test", "know_val", "reason_test", "reason_val", "instruct_test", "instruct_val",
          "bio_train", "bio_val", "bio_test", "rotate_train", "rotate_val", "rotate_test")
# What each embedded task and versatility suite is, i.e. the only type its data can be scored as.
TASK_TYPES = {"bio": "generation", "rotate": "generation"}
SUITE_TYPES = {"know": "multiple_choice", "reason": "generation", "instruct": "generation"}
DIGITS = [str(d) for d in range(10)]
# "=" closes every prompt.
GLUE = ["=", "add", "bio", "rotate"]


FITS_EMBEDDED_MODEL = True  # its words are the embedded tokenizer's vocabulary, and only it knows them


@dataclass(frozen=True)
class WorldSpec:
    """Sizes of the synthetic world. Defaults are the embedded default experiment's."""

    seed: int = setting(0, "seed of every random choice in the world")
    entities: int = setting(48, "entities with facts (know) and new facts (bio)", minimum=4, maximum=100)
    list_symbols: int = setting(16, "letters the lists are made of", minimum=2, maximum=26)
    min_list_len: int = setting(3, "shortest list", minimum=3)
    max_list_len: int = setting(6, "longest list", minimum=3)
    reason_train: int = setting(3000, "digit sums in the versatility training mixture", minimum=1)
    instruct_train: int = setting(3000, "list operations in the versatility training mixture", minimum=1)
    rotate_train: int = setting(2000, "rotate training items", minimum=1)
    test_items: int = setting(200, "items of each held-out test and validation split", minimum=1)
    know_repeats: int = setting(16, "times each fact appears in the versatility training mixture", minimum=1)
    copy_train: int = setting(2000, "items copying random words of the whole vocabulary in the versatility training "
                              "mixture, so the base model has read and written every word a task uses (0: the "
                              "older world, where bio's answers and the words bio and rotate are never seen)", minimum=0)
    copy_len: int = setting(4, "words per copy item", minimum=1)

    def __post_init__(self) -> None:
        """Refuse a world that cannot be built; messages name the ``embedded.world`` key to change."""
        if self.entities < 4:
            raise ValueError(f"embedded.world.entities: must be >= 4, got {self.entities}")
        if not 3 <= self.min_list_len <= self.max_list_len:
            raise ValueError(f"embedded.world.min_list_len: must be >= 3 and not exceed max_list_len, got "
                             f"{self.min_list_len} and {self.max_list_len}")
        if not 2 <= self.list_symbols <= 26:
            raise ValueError(f"embedded.world.list_symbols: must be in [2, 26], got {self.list_symbols}")
        needed, possible = self.lists_needed, self.lists_possible
        n_problems = len(_addition_problems())
        if needed > possible:
            raise ValueError(
                f"embedded.world.max_list_len: {self.list_symbols} list_symbols in lists of {self.min_list_len} to "
                f"{self.max_list_len} make {possible:,} distinct lists, but the world needs {needed:,} (4 × test_items "
                "+ instruct_train + rotate_train); raise list_symbols or max_list_len, or lower those counts")
        if 2 * self.test_items >= n_problems:
            raise ValueError(f"embedded.world.test_items: {self.test_items} test and as many validation sums leave no "
                             f"training sums of the {n_problems:,} there are; lower test_items")

    @property
    def lists_needed(self) -> int:
        """Distinct lists the instruct and rotate splits take (every list is used once)."""
        return 4 * self.test_items + self.instruct_train + self.rotate_train

    @property
    def lists_possible(self) -> int:
        return sum(self.list_symbols ** n for n in range(self.min_list_len, self.max_list_len + 1))


def entity_names(spec: WorldSpec) -> list[str]:
    return [f"e{i:02d}" for i in range(spec.entities)]


def list_symbols(spec: WorldSpec) -> list[str]:
    return [chr(ord("a") + i) for i in range(spec.list_symbols)]


def vocabulary(spec: WorldSpec) -> list[str]:
    """Every word any record of this world can contain (the tokenizer's vocabulary)."""
    words = entity_names(spec) + list_symbols(spec) + DIGITS + GLUE + list(LIST_OPS)
    for attribute, values in KNOW_ATTRIBUTES.items():
        words += [attribute] + values
    words += JOBS + CITIES
    if spec.copy_train:
        words.append(COPY)
    return list(dict.fromkeys(words))


def _copy_items(rng: random.Random, spec: WorldSpec) -> list[dict]:
    """``copy w1 … wn =`` → ``w1 … wn`` over random words of the whole vocabulary ("=" closes prompts: not a word
    to copy). Random draws pair no entity with a job or city, and copying is no list operation."""
    words = [w for w in vocabulary(spec) if w != "="]
    items = []
    for _ in range(spec.copy_train):
        drawn = " ".join(rng.choice(words) for _ in range(spec.copy_len))
        items.append(_record(COPY, drawn, drawn))
    return items


def _record(instruction: str, input_: str, output: str) -> dict:
    return {"instruction": instruction, "input": input_, "output": output}


def _facts(rng: random.Random, entities: list[str], attributes: dict[str, list[str]]) -> dict:
    return {e: {a: rng.choice(values) for a, values in attributes.items()} for e in entities}


def _digits(n: int) -> str:
    return " ".join(str(n))


def _apply_list_op(op: str, items: list[str]) -> list[str]:
    if op == "reverse":
        return items[::-1]
    if op == "swap":
        return [items[-1]] + items[1:-1] + [items[0]]
    if op == "skip":
        return items[1:]
    if op == "rotate":
        return items[1:] + items[:1]
    raise ValueError(f"unknown list operation {op!r}")


def _split(items: list, n_held_out: int, n_train: int) -> tuple[list, list, list]:
    """Test, validation (``n_held_out`` each, disjoint) and training items, in that order."""
    test, val, pool = items[:n_held_out], items[n_held_out : 2 * n_held_out], items[2 * n_held_out :]
    if not pool:
        raise ValueError("the world is too small to hold out test and validation items")
    return test, val, pool[:n_train]


def _addition_problems() -> list[tuple[int, ...]]:
    """Every sum of three or four digits, in a fixed order."""
    problems = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    return problems + [(a, b, c, d) for a in range(10) for b in range(10) for c in range(10) for d in range(10)]


def _unique_lists(rng: random.Random, spec: WorldSpec, n: int) -> list[tuple[str, ...]]:
    symbols = list_symbols(spec)
    seen: dict[tuple[str, ...], None] = {}
    while len(seen) < n:
        length = rng.randint(spec.min_list_len, spec.max_list_len)
        seen.setdefault(tuple(rng.choice(symbols) for _ in range(length)), None)
    return list(seen)


def build_world(spec: WorldSpec) -> dict[str, list[dict]]:
    """Return every split of the world, keyed by file stem (e.g. ``bio_train``)."""
    rng = random.Random(spec.seed)
    entities = entity_names(spec)
    know = _facts(rng, entities, KNOW_ATTRIBUTES)
    new = _facts(rng, entities, {"job": JOBS, "city": CITIES})

    know_train = [_record(a, e, v) for e in entities for a, v in know[e].items()]

    def multiple_choice(record: dict) -> dict:
        values = KNOW_ATTRIBUTES[record["instruction"]]
        choices = rng.sample([v for v in values if v != record["output"]], 3) + [record["output"]]
        rng.shuffle(choices)
        return {**record, "choices": choices, "answer": choices.index(record["output"])}

    # Knowledge is recall of trained facts: validation and test ask the same facts, other distractors.
    know_test = [multiple_choice(r) for r in know_train]
    know_val = [multiple_choice(r) for r in know_train]

    # Multi-step arithmetic: the sum of three or four digits, on problems never seen in training.
    problems = _addition_problems()
    rng.shuffle(problems)
    reason_test, reason_val, reason_train = _split(problems, spec.test_items, spec.reason_train)
    as_addition = lambda p: _record("add", " ".join(map(str, p)), _digits(sum(p)))

    n_rotate = spec.rotate_train + 2 * spec.test_items
    lists = _unique_lists(rng, spec, 4 * spec.test_items + spec.instruct_train + spec.rotate_train)
    instruct_items = [(rng.choice(LIST_OPS), items) for items in lists[:-n_rotate]]
    instruct_test, instruct_val, instruct_train = _split(instruct_items, spec.test_items, spec.instruct_train)
    as_list_op = lambda op, items: _record(op, " ".join(items), " ".join(_apply_list_op(op, list(items))))
    rotate_test, rotate_val, rotate_train = _split(lists[-n_rotate:], spec.test_items, spec.rotate_train)

    # Just the two facts, so ROUGE-L gives half credit per recalled fact and none for a template word.
    bio = [_record("bio", e, f"{new[e]['job']} {new[e]['city']}") for e in entities]

    versatility_train = (
        know_train * spec.know_repeats
        + [as_addition(p) for p in reason_train]
        + [as_list_op(op, items) for op, items in instruct_train]
        + _copy_items(rng, spec)  # drawn last: with copy_train 0 the rest of the world is the older one
    )
    rng.shuffle(versatility_train)
    return {
        "versatility_train": versatility_train,
        "know_test": know_test,
        "know_val": know_val,
        "reason_test": [as_addition(p) for p in reason_test],
        "reason_val": [as_addition(p) for p in reason_val],
        "instruct_test": [as_list_op(op, items) for op, items in instruct_test],
        "instruct_val": [as_list_op(op, items) for op, items in instruct_val],
        # Knowledge injection: Spec is recall of every injected fact, so test asks the trained facts.
        "bio_train": bio,
        "bio_val": list(bio),
        "bio_test": list(bio),
        "rotate_train": [as_list_op("rotate", items) for items in rotate_train],
        "rotate_val": [as_list_op("rotate", items) for items in rotate_val],
        "rotate_test": [as_list_op("rotate", items) for items in rotate_test],
    }


Spec, build = WorldSpec, build_world  # the face cofi.data.embedded expects
