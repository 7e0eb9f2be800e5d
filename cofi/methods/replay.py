"""Replay: every batch mixes versatility training examples into the speciality examples.

Each (micro-)batch holds round(fraction × batch_size) replay examples and the rest from the task,
so the step count and batch size, i.e. the budget, stay those of Full SFT. Replay examples come
from ``data`` (default: the embedded world's versatility training mixture; a user's own model
needs a JSONL path), a seeded sample of as many as the run can use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Method, MethodError, Need, Setup, train_everything

REPLAY_DATA = Need("replay_data", "versatility training JSONL to mix into every batch",
                   lambda experiment, run, task, seed: run.params["data"]
                   or experiment.layout.data_file("versatility_train"))


def replay_per_batch(fraction: float, batch_size: int) -> int:
    return round(fraction * batch_size)


@dataclass(frozen=True)
class ReplayConfig:
    fraction: float = setting(0.1, "share of every batch taken from the replay data, in [0, 1)", sweep=True, minimum=0,
                              exclusiveMaximum=1)
    data: str | None = setting(None, "versatility training JSONL (null: the embedded world's mixture)", format="path")


class Replay(Method):
    name = "replay"
    trains_on_old_data = True
    description = "Full SFT with a fraction of each batch drawn from versatility training data"
    config = ReplayConfig
    needs = (REPLAY_DATA,)

    def check(self, key, run, context):
        params, batch_size = run.params, run.train.batch_size
        n = replay_per_batch(params["fraction"], batch_size)
        if params["fraction"] > 0 and not 1 <= n < batch_size:
            raise MethodError(f"config key {key}.fraction: {params['fraction']} of batch_size {batch_size} "
                              f"gives {n} replay examples per batch (need 1 to {batch_size - 1})")
        if params["data"] is None:
            if not context.experiment.embedded_data_fits_model:
                raise MethodError(f"config key {key}.data: null takes the {context.experiment.embedded_suites} suites' "
                                  "versatility mixture, which does not fit this model (the world's is the embedded "
                                  "model's, the chat suites' a real one's); give a JSONL path or set embedded.suites")
            return
        if not context.check_files:
            return
        from cofi.data.records import DataError, read_jsonl

        try:
            read_jsonl(params["data"])
        except DataError as error:
            raise MethodError(f"config key {key}.data: {error}") from None

    def setup(self, model, run, inputs):
        params = run.params
        from cofi.data.records import read_jsonl
        from cofi.training.loop import collate, example_batches

        batch_size = run.train.batch_size
        n_replay = replay_per_batch(params["fraction"], batch_size)
        if n_replay == 0:
            return Setup(model, train_everything(model))
        path = inputs.path(REPLAY_DATA)
        records = read_jsonl(path)
        needed = run.train.steps * run.train.grad_accum * n_replay
        if len(records) > needed:  # tokenise only what the run can use
            records = random.Random(inputs.seed).sample(records, needed)
        replay_examples = inputs.tokenize(records)
        inputs.log(f"replay: {n_replay} of every {batch_size} examples from {len(replay_examples)} "
                   f"versatility examples ({path})")

        def batches(examples, batch_size, pad_id, seed):
            task = example_batches(examples, batch_size - n_replay, seed)
            replay = example_batches(replay_examples, n_replay, seed + 1)
            while True:
                yield collate(next(task) + next(replay), pad_id)

        return Setup(model, train_everything(model), batches=batches)
