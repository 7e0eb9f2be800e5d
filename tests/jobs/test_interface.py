"""A job's interface is its dataclass: the command's flags, its help and the JSON spec a rule passes all come
from the fields, and a spec goes to a job and back unchanged."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cofi.cli import build_parser, main
from cofi.config.runs import Run
from cofi.config.settings import BaseTrainSettings, ClaimRows, ComputeSettings, PromptSettings, TablesSettings, TrainSettings
from cofi.data.world import WorldSpec
from cofi.jobs import JOBS, job_class
from cofi.jobs.evaluate import EvaluateJob, Scoring
from cofi.jobs.finetune import FinetuneJob
from cofi.jobs.interface import JobSpecError, flag_of, job_fields, job_from, spec_json, spec_of
from cofi.search.policy import Policy

RUN = Run(name="l2_lr1e-4", method="l2", params={"lambda": 0.1}, train=TrainSettings(lr=1e-4, steps=7), sam_rho=0.05)
FINETUNE = FinetuneJob(model="base", train_data="train.jsonl", run=RUN, seed=2, prompt=PromptSettings(max_len=48),
                       compute=ComputeSettings(device="cpu", precision="bf16"), inputs={"importance": "i.safetensors"},
                       out="out/model", curve="out/loss.csv", dtype="bfloat16")


def subparser(command):
    return build_parser()._subparsers._group_actions[0].choices[command]


@pytest.mark.parametrize("command", list(JOBS))
def test_every_workflow_command_is_generated_from_its_job_class(command):
    """Its flags: --spec, one per field, --threads where it computes; each field's help is the flag's help."""
    cls = job_class(command)
    parser = subparser(command)
    flags = {option for action in parser._actions for option in action.option_strings if option.startswith("--")}
    expected = {flag_of(f) for f, _ in job_fields(cls)} | {"--help", "--spec"} | ({"--threads"} if cls.computes else set())
    expected |= {"--no-" + flag_of(f)[2:] for f, kind in job_fields(cls) if kind is bool}
    assert flags == expected
    help_text = " ".join(parser.format_help().split())
    for field, _ in job_fields(cls):
        assert " ".join(field.metadata["job_help"].split()) in help_text, field.name
    assert cls.__doc__.split("\n\n")[0].split()[0] in help_text
    assert {f.name for f in dataclasses.fields(cls)} == {f.name for f, _ in job_fields(cls)} | {"log"}


def test_a_spec_goes_to_the_job_and_back_unchanged():
    jobs = [
        FINETUNE,
        EvaluateJob(scorings=(Scoring("m", {"spec": {}, "vers": {}}, {"seed": 0}, "s.json", "p.json"),
                              Scoring("m2", {"spec": {}, "vers": {}}, {"seed": 1}, "s2.json")),
                    prompt=PromptSettings(), max_items=5, device="cpu"),
        job_class("build-base")(world=WorldSpec(entities=12), architecture={"layers": 2}, seed=1,
                                train=BaseTrainSettings(steps=3), train_data="t.jsonl", prompt=PromptSettings(),
                                out="base"),
        job_class("search-step")(task="bio", depth=1, policy=Policy(mode="grid", schedule=("halves",)), n_layers=8,
                                 reference="r.json", previous="d0.json", candidates={"a": []}, out="d1.json"),
        job_class("claims")(scores=("base.json", "full=x.json"), searches=("a.json", "b.json"),
                            rows=ClaimRows(full="full", sam=None, old_data=("replay",)), out_dir="t"),
        job_class("table")(scores=("base.json", "full=x.json"), out_dir="t", settings=TablesSettings(show_std=True),
                           expect={"runs": []}, selected_on_test={"bio": ["sft_tuned"]}),
    ]
    for job in jobs:
        spec = json.loads(json.dumps(spec_of(job)))
        assert job_from(type(job), spec, "test") == job, type(job).__name__


def test_a_spec_holds_only_the_keys_off_their_defaults():
    """A new option left at its default then changes no rule's parameters: nothing reruns."""
    job = dataclasses.replace(FINETUNE, seed=0, compute=ComputeSettings(), dtype="float32", inputs={})
    assert set(spec_of(job)) == {"model", "train_data", "run", "prompt", "out", "curve"}
    assert spec_of(FINETUNE)["compute"] == {"device": "cpu", "precision": "bf16"}
    assert spec_of(FINETUNE)["prompt"] == {"max_len": 48}


def test_flags_set_or_override_the_specs_keys(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(FinetuneJob, "execute", lambda job: ran.append(job))
    monkeypatch.setattr("cofi.cli.threads", lambda n: None)
    spec = json.dumps(spec_of(FINETUNE))
    assert main(["finetune", "--spec", spec, "--seed", "5", "--no-trust-remote-code", "--threads", "1"]) == 0
    assert ran[-1] == dataclasses.replace(FINETUNE, seed=5)
    assert main(["finetune", "--spec", spec, "--compute", '{"checkpoint_every": 3}']) == 0
    assert ran[-1].compute == ComputeSettings(checkpoint_every=3)  # a flag replaces the key as a whole


@pytest.mark.parametrize("change, message", [
    ({"epochs": 3}, r"unknown key\(s\) \['epochs'\]"),
    ({"model": None}, r"model \(--model\): null where a value is needed"),
    ({"seed": "1"}, r"seed \(--seed\): expected int, got \"1\""),
    ({"seed": True}, r"seed \(--seed\): expected int, got true"),
    ({"dtype": "int8"}, r"dtype \(--dtype\): expected one of 'float32', .*got 'int8'"),
    ({"compute": {"precision": "fp8"}}, r"compute \(--compute\) precision: 'fp8' is not one of \['fp32', 'bf16', 'fp16'\]"),
    ({"compute": {"gpus": 2}}, r"compute \(--compute\): Additional properties are not allowed \('gpus' was unexpected\)"),
    ({"prompt": {"max_len": 0}}, r"prompt \(--prompt\) max_len: 0 is less than the minimum of"),
    ({"run": {"name": "x"}}, r"run \(--run-spec\): missing key 'method'"),
    ({"curve": ["a"]}, r"curve \(--curve\): expected str"),
])
def test_a_bad_spec_is_an_error_naming_the_key_and_its_flag(change, message, capsys):
    spec = {**spec_of(FINETUNE), **change}
    with pytest.raises(JobSpecError, match=message):
        job_from(FinetuneJob, spec, "job")
    assert main(["finetune", "--spec", json.dumps(spec)]) == 2
    assert "cofi finetune: error: job" in capsys.readouterr().err


def test_a_missing_key_is_named_with_its_flag_before_anything_runs():
    spec = {k: v for k, v in spec_of(FINETUNE).items() if k not in ("out", "train_data")}
    with pytest.raises(JobSpecError, match=r"missing train_data \(--train\), out \(--out\)"):
        spec_json(FinetuneJob, spec, "the finetune job's spec")
