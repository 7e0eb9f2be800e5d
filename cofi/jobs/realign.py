"""The realignment probe's examples: a handful of versatility items with their references, as training records.

The probe itself is a finetune job (the run's model, these records, a few steps of method full) and an evaluate job
(rules/realign.smk); its table is cofi.analysis.realign's."""

from __future__ import annotations

from dataclasses import dataclass

from cofi.jobs.interface import Job, option


@dataclass(frozen=True, kw_only=True)
class RealignDataJob(Job):
    """The realignment probe's training records: the first items of each versatility suite's validation file, taken
    in turn, each with its reference (a multiple-choice item's right choice)."""

    suites: dict = option('{suite: {"path", "type"}}: the versatility suites\' validation files')
    examples: int = option("how many records (realign.examples)")
    out: str = option("output JSONL")

    def execute(self) -> list[dict]:
        from cofi.data.records import write_jsonl

        records = realign_records(self.suites, self.examples)
        write_jsonl(self.out, records)
        self.log(f"{len(records)} realignment examples from {', '.join(self.suites)} -> {self.out}")
        return records


def realign_records(suites: dict, examples: int) -> list[dict]:
    """The first ``examples`` items with a reference, one suite after another in turn, as training records."""
    from cofi.evaluation.tasks import TASK_TYPES

    def as_training(record: dict) -> dict:
        if "messages" in record:
            return {"messages": record["messages"]}
        return {"instruction": record["instruction"], "input": record.get("input", ""), "output": record["output"]}

    per_suite = [[as_training(r) for r in TASK_TYPES[s["type"]].read(s["path"]) if r.get("output")]
                 for s in suites.values()]
    in_turn = [items[i] for i in range(max(map(len, per_suite), default=0)) for items in per_suite if i < len(items)]
    if not in_turn:
        raise ValueError(f"no versatility item with a reference to realign on in {[s['path'] for s in suites.values()]}")
    return in_turn[:examples]
