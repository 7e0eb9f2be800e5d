"""The method harness and the baselines: LoRA, L1/L2 toward the start, Wise-FT, replay; run resolution."""

import copy

import pytest
import torch

from cofi.data.prompts import Prompter
from cofi.config.runs import Run, expand_runs, make_run
from cofi.methods import METHODS, Inputs
from cofi.methods.penalty import DistanceToInit
from cofi.methods.wiseft import interpolate
from cofi.models.weights import save_beside_weights
from cofi.config.settings import TrainSettings
from cofi.training.loop import tokenize_dataset, train

from conftest import REPO, TEMPLATE

TRAIN = {"lr": 1e-3, "steps": 4, "batch_size": 4, "grad_accum": 1, "warmup_ratio": 0.0, "weight_decay": 0.0,
         "max_grad_norm": 1.0, "log_every": 100}


def inputs_for(tokenizer, **paths):
    return Inputs(seed=0, tokenize=lambda records: tokenize_dataset(records, Prompter(tokenizer, TEMPLATE), True, 32),
                  load_model=None, log=lambda _: None, paths=paths)


def run_of(method: str, **keys) -> Run:
    """A run of ``method``: training keys from TRAIN unless given, the method's defaults unless given."""
    train_keys = {k: keys.pop(k) for k in list(keys) if k in TRAIN}
    params = {k: spec["default"] for k, spec in METHODS[method].keys.items()} | keys
    return Run(name=method, method=method, params=params, train=TrainSettings(**TRAIN | train_keys))



def run_method(run, model, inputs, examples, tmp_path):
    setup = METHODS[run.method].setup(model, run, inputs)
    batches = setup.batches(examples, run.train.batch_size, 0, 0) if setup.batches else None
    train(setup.model, examples, run.train, 0, 0, tmp_path / f"{run.method}.csv", log=lambda _: None,
          extensions=setup.extensions, batches=batches)
    return setup


def test_lora_on_a_layer_range_trains_only_adapters_there_and_merges(tiny_model, tokenizer, examples, tmp_path):
    base = copy.deepcopy(tiny_model)
    run = run_of("lora", rank=2, alpha=4, range=[0.5, 1], target_modules=["q_proj", "down_proj"], lr=1e-2)
    setup = run_method(run, tiny_model, inputs_for(tokenizer), examples, tmp_path)
    assert sorted(setup.trainable) == sorted(
        f"base_model.model.model.layers.1.{m}.lora_{ab}.default.weight"
        for m in ("self_attn.q_proj", "mlp.down_proj") for ab in "AB")
    probe = torch.tensor([[1, 5, 6, 7]])
    adapted_logits = setup.model(input_ids=probe).logits
    merged = setup.finish(setup.model, tmp_path)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    torch.testing.assert_close(merged(input_ids=probe).logits, adapted_logits, atol=1e-5, rtol=1e-4)
    changed = {n for (n, a), b in zip(merged.named_parameters(), base.parameters()) if not torch.equal(a, b)}
    assert changed == {"model.layers.1.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"}


def test_penalties_by_hand():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    l1, l2 = DistanceToInit(model, ["weight"], 1, 0.5), DistanceToInit(model, ["weight"], 2, 0.5)
    assert l1.penalty().item() == 0.0 and l2.penalty().item() == 0.0
    with torch.no_grad():
        model.weight.add_(torch.tensor([[0.5, -1.0]]))
    assert l1.penalty().item() == pytest.approx(0.5 * 1.5) and l2.penalty().item() == pytest.approx(0.5 * 1.25)
    l2.penalty().backward()
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.5, -1.0]]))  # 2·λ·(w − w₀)


def test_l2_penalty_joins_the_objective_once_per_step_and_pulls_toward_the_start(tiny_model, tokenizer, examples, tmp_path):
    import pandas as pd

    start = [p.detach().clone() for p in tiny_model.parameters()]

    def distance(model):
        return sum(((p - s) ** 2).sum().item() for p, s in zip(model.parameters(), start))

    plain, pulled = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    run_method(run_of("full", lr=1e-2, steps=6), plain, inputs_for(tokenizer), examples, tmp_path)
    run_method(run_of("l2", lr=1e-2, steps=6, grad_accum=2, **{"lambda": 10.0}), pulled, inputs_for(tokenizer),
               examples, tmp_path)
    assert distance(pulled) < 0.5 * distance(plain)
    curve = pd.read_csv(tmp_path / "l2.csv")
    assert curve["penalty"].iloc[0] == 0 and (curve["penalty"].iloc[1:] > 0).all()


def test_wiseft_interpolates_the_files_tensor_by_tensor(tiny_model, tokenizer, tmp_path):
    from cofi.models.loading import load_model, save_model

    source = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    save_model(tiny_model, tokenizer, tmp_path / "base")
    save_model(source, tokenizer, tmp_path / "source")
    for alpha in (0.0, 0.25, 1.0):
        out = tmp_path / f"mixed{alpha}"
        # shards of at most 20 KB: several files and an index, read back by from_pretrained
        files = interpolate(tmp_path / "base", tmp_path / "source", alpha, torch.float32, out, max_shard_bytes=20_000)
        assert len(files) > 1 and (out / "model.safetensors.index.json").is_file()
        save_beside_weights(tmp_path / "base", tokenizer, out, torch.float32)
        mixed, _ = load_model(out)
        for (name, m), b, s in zip(mixed.named_parameters(), tiny_model.parameters(), source.parameters()):
            torch.testing.assert_close(m, (1 - alpha) * b + alpha * s, msg=name)
            if alpha in (0.0, 1.0):
                assert torch.equal(m, b if alpha == 0 else s), name


def test_wiseft_interpolates_tied_embeddings_once(tokenizer, tmp_path):
    """A model whose head is its embedding (SmolLM2's layout) stores the tensor once, and it moves by α once."""
    from cofi.models.loading import build_llama, load_model, save_model

    base = build_llama(len(tokenizer), {"layers": 1, "hidden": 16, "intermediate": 32, "heads": 2, "max_len": 16}, 0)
    base.config.tie_word_embeddings = True
    base.tie_weights()
    source = copy.deepcopy(base)
    with torch.no_grad():
        source.get_input_embeddings().weight.add_(1.0)
    save_model(base, tokenizer, tmp_path / "base")
    save_model(source, tokenizer, tmp_path / "source")
    interpolate(tmp_path / "base", tmp_path / "source", 0.25, torch.float32, tmp_path / "mixed")
    save_beside_weights(tmp_path / "base", tokenizer, tmp_path / "mixed", torch.float32)
    mixed, _ = load_model(tmp_path / "mixed")
    expected = base.get_input_embeddings().weight.detach() + 0.25
    torch.testing.assert_close(mixed.get_input_embeddings().weight, expected)
    assert mixed.get_output_embeddings().weight.data_ptr() == mixed.get_input_embeddings().weight.data_ptr()


def test_wiseft_refuses_a_source_of_another_shape(tiny_model, tokenizer, tmp_path):
    from cofi.methods import MethodError
    from cofi.models.loading import build_llama, save_model

    other = build_llama(tiny_model.config.vocab_size, {"layers": 1, "hidden": 32, "intermediate": 64, "heads": 4, "max_len": 32}, 0)
    save_model(tiny_model, tokenizer, tmp_path / "base")
    save_model(other, tokenizer, tmp_path / "other")
    with pytest.raises(MethodError, match="the source model's tensors differ"):
        interpolate(tmp_path / "base", tmp_path / "other", 0.5, torch.float32, tmp_path / "out")


def test_replay_mixes_a_fixed_share_of_every_batch(tiny_model, tokenizer, tiny_world, tmp_path):
    from cofi.data.records import write_jsonl

    path = tmp_path / "versatility.jsonl"
    write_jsonl(path, tiny_world["versatility_train"])
    task = tokenize_dataset(tiny_world["rotate_train"], Prompter(tokenizer, TEMPLATE), True, 32)
    run = run_of("replay", fraction=0.25, batch_size=8, steps=5)
    setup = METHODS["replay"].setup(tiny_model, run, inputs_for(tokenizer, replay_data=str(path)))
    stream = setup.batches(task, 8, 0, 0)
    rotate_id = tokenizer.convert_tokens_to_ids("rotate")
    for _ in range(5):
        batch = next(stream)
        assert batch["input_ids"].shape[0] == 8
        from_task = (batch["input_ids"][:, 1] == rotate_id).sum().item()  # prompts start with BOS, then the instruction
        assert from_task == 6  # round(0.25 × 8) = 2 replay examples
    again = METHODS["replay"].setup(copy.deepcopy(tiny_model), run, inputs_for(tokenizer, replay_data=str(path)))
    assert torch.equal(next(again.batches(task, 8, 0, 0))["input_ids"], next(setup.batches(task, 8, 0, 0))["input_ids"])


def runs_of(entries: dict) -> dict[str, Run]:
    return {name: make_run(name, entry, TRAIN, {}) for name, entry in expand_runs(entries).items()}


def test_sweeps_expand_into_one_run_per_value_and_options_resolve():
    runs = runs_of({"full": {}, "full_sam": {"method": "full", "sam": {"rho": 0.1}},
                    "full_2x": {"method": "full", "equal_compute": True}, "wiseft": {"alpha": [0.25, 0.5]}})
    assert list(runs) == ["full", "full_sam", "full_2x", "wiseft_alpha0.25", "wiseft_alpha0.5"]
    assert runs["wiseft_alpha0.25"].method == "wiseft" and runs["wiseft_alpha0.25"].params == {"alpha": 0.25, "source": "full"}
    assert runs["full"].train.spec() == TRAIN and runs["full"].sam_rho is None and not runs["full"].equal_compute
    assert runs["full_sam"].sam_rho == 0.1 and runs["full_sam"].train.spec() == TRAIN
    assert runs["full_2x"].equal_compute and runs["full_2x"].train.spec() == {**TRAIN, "steps": 8}
    assert runs["wiseft_alpha0.5"].sweep == "wiseft" and runs["wiseft_alpha0.5"].sweep_label == "alpha=0.5"
    assert Run.from_spec(runs["full_sam"].spec()) == runs["full_sam"]  # what the finetune job gets back


def test_lr_and_sam_rho_lists_are_sweeps_too():
    entries = {"sam": {"method": "full", "sam": {"rho": [0.01, 0.05]}, "lr": [1e-4, 3e-4]}, "l2": {"lambda": [0.1, 1.0]}}
    runs = runs_of(entries)
    assert list(runs) == ["sam_lr0.0001_rho0.01", "sam_lr0.0001_rho0.05", "sam_lr0.0003_rho0.01", "sam_lr0.0003_rho0.05",
                          "l2_lambda0.1", "l2_lambda1"]
    assert runs["sam_lr0.0003_rho0.05"].train.lr == 3e-4 and runs["sam_lr0.0003_rho0.05"].sam_rho == 0.05
    assert runs["sam_lr0.0001_rho0.01"].sweep_label == "lr=0.0001, rho=0.01"
    assert entries["sam"]["sam"]["rho"] == [0.01, 0.05]  # the config itself is left alone


def test_every_registered_method_describes_its_keys_and_needs():
    from cofi.config.experiment import Experiment
    from cofi.config.checks import load_config
    from cofi.config.schema import validate_schema
    from cofi.methods.base import Need

    experiment = Experiment(validate_schema(load_config(REPO / "config.yaml")))
    for name, method in METHODS.items():
        assert method.name == name and method.description
        for key, spec in method.keys.items():
            assert "default" in spec and spec.get("description"), f"{name}.{key}"
        assert set(method.sweep) <= set(method.keys)
        for need in method.needs:  # each Need says where the workflow finds its file
            assert isinstance(need, Need) and need.help
            run = Run(name="x", method=name, params={k: s["default"] for k, s in method.keys.items()})
            assert need.path(experiment, run, "bio", 0).startswith("results/default/"), (name, need.name)


def test_a_run_that_trains_what_an_earlier_run_trains_uses_its_files():
    from cofi.config.checks import load_config
    from cofi.config.experiment import Experiment
    from cofi.config.schema import validate_schema

    config = validate_schema(load_config(REPO / "config.yaml"))
    experiment = Experiment(config)
    # sft's lr 3e-4 is the training section's: that variant is Full SFT itself. Nothing else trains alike.
    assert experiment.runs.stored_as == {"sft_lr0.0003": "full"}
    assert experiment.run_file("sft_lr0.0003", "bio", 1, "test_scores.json") == "results/default/runs/full/bio/seed1/test_scores.json"
    assert experiment.runs.storage("full_sam") == "full_sam" and experiment.runs.storage("region-r0-50_ffn") == "region-r0-50_ffn"
    # Another lr, another seed-independent option, or another method's key: its own training.
    config["training"]["lr"] = 1e-4
    assert Experiment(config).runs.stored_as == {"sft_lr0.0001": "full"}
    config["runs"]["l2_again"] = {"method": "l2", "lambda": 0.1}
    config["runs"]["l2_other"] = {"method": "l2", "lambda": 0.2}
    assert Experiment(config).runs.stored_as == {"sft_lr0.0001": "full", "l2_again": "l2"}


def test_search_candidates_are_keyed_by_region_and_lr_and_the_pick_brings_its_lr():
    from cofi.config.checks import load_config
    from cofi.config.experiment import Experiment
    from cofi.config.schema import validate_schema

    config = validate_schema(load_config(REPO / "config.yaml"))
    assert Experiment(config).search.lrs == (3e-4,)  # null: the reference's lr alone, the runs named as before
    config["search"]["lr"] = [1e-4, 3e-4, 1e-3]
    config["runs"]["cofitune_own_lr"] = {"method": "cofitune", "softmask": "grad", "lr": 2e-4}
    experiment = Experiment(config)
    assert experiment.search.lrs == (1e-4, 3e-4, 1e-3)
    names = [experiment.candidates.name("r25-50_ffn", lr) for lr in experiment.search.lrs]
    assert names == ["region-r25-50_ffn_lr0.0001", "region-r25-50_ffn", "region-r25-50_ffn_lr0.001"]
    for name, lr in zip(names, experiment.search.lrs):
        run = experiment.run(name)
        assert (run.method, run.params["range"], run.params["modules"], run.train.lr) == ("region", ["1/4", "1/2"], ["ffn"], lr)
        assert run.train.steps == experiment.runs["full"].train.steps  # otherwise trained like the reference
    pick = {"selected": "r0-25_mha", "lr": 1e-3, "run": "region-r0-25_mha_lr0.001"}
    spec = experiment.candidates.with_pick(experiment.run("cofitune_grad"), pick)
    assert (spec["params"]["range"], spec["params"]["modules"], spec["train"]["lr"]) == (["0", "1/4"], ["mha"], 1e-3)
    assert experiment.candidates.with_pick(experiment.run("cofitune_own_lr"), pick)["train"]["lr"] == 2e-4  # a run's own lr stays


def test_the_tuned_choices_of_a_study_sam_on_or_off_and_the_soft_mask_variant():
    """sam.rho 0 is plain AdamW (so [0, 0.05] tunes SAM on or off); softmask is a sweep too, none training
    the region without a mask; a CoFiTune run with a range and modules trains that region, no search."""
    runs = runs_of({"cofitune": {"softmask": ["none", "grad"], "sam": {"rho": [0, 0.05]}},
                    "paper": {"method": "cofitune", "range": [0.25, 0.5], "modules": ["ffn"]}})
    assert sorted(runs) == ["cofitune_softmaskgrad_rho0", "cofitune_softmaskgrad_rho0.05", "cofitune_softmasknone_rho0",
                            "cofitune_softmasknone_rho0.05", "paper"]
    assert runs["cofitune_softmasknone_rho0"].sam_rho is None and runs["cofitune_softmasknone_rho0.05"].sam_rho == 0.05
    method = METHODS["cofitune"]
    assert method.trains_pick(runs["cofitune_softmaskgrad_rho0"]) and not method.trains_pick(runs["paper"])


def test_softmask_none_adds_no_extension_and_a_fixed_cofitune_region_trains_only_there(tiny_model, tokenizer):
    paper = run_of("cofitune", range=[0.5, 1.0], modules=["ffn"], softmask="none", groups={"ffn": ["up_proj", "down_proj"]})
    setup = METHODS["cofitune"].setup(tiny_model, paper, inputs_for(tokenizer))  # no importance file read
    assert setup.extensions == []
    assert setup.trainable == ["model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight"]


def test_a_method_added_in_one_place_is_checked_planned_and_trained(tmp_path, monkeypatch, tiny_world, tokenizer,
                                                                   tiny_model):
    """A new method is one Method subclass and one registry entry: the config's checks, the memory plan and the
    fine-tuning job take it with no other change (here, in the test, registered for the test's length)."""
    import yaml
    from safetensors.torch import load_file

    from cofi.config.checks import checked_experiment
    from dataclasses import dataclass

    from cofi.config.settings import PromptSettings, setting
    from cofi.data.records import write_jsonl
    from cofi.jobs.finetune import FinetuneJob, finetune
    from cofi.methods import Method, Setup
    from cofi.models.loading import save_model
    from cofi.models.plan import Architecture, needs, plan_table

    @dataclass(frozen=True)
    class FinalNormConfig:
        gain_lr_scale: float = setting(1.0, "accepted and checked, to show a method's own key", exclusiveMinimum=0)

    class FinalNorm(Method):
        """Only the final RMSNorm's gain trains."""

        name = "final_norm"
        description = "only the final norm trains"
        config = FinalNormConfig

        def trained_params(self, arch, params, module_groups):
            return arch.hidden

        def setup(self, model, run, inputs):
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name == "model.norm.weight")
            return Setup(model, ["model.norm.weight"])

    monkeypatch.setitem(METHODS, FinalNorm.name, FinalNorm())
    config = yaml.safe_load((REPO / "tests/tiny_config.yaml").read_text())
    config["training"].pop("kl_every")  # the job below is given no forgetting samples
    config["runs"] = {"mine": {"method": "final_norm", "gain_lr_scale": 2.0, "steps": 3, "batch_size": 4}}
    config["search"] = {"enabled": False, "reference": "mine"}
    config["landscape"] = {"runs": []}
    experiment = checked_experiment(config, check_files=False)
    run = experiment.runs["mine"]
    assert run.method == "final_norm" and run.params == {"gain_lr_scale": 2.0}

    bad = {**config, "runs": {"mine": {"method": "final_norm", "gain_lr_scale": -1}}}
    with pytest.raises(Exception, match="runs.mine.gain_lr_scale"):
        checked_experiment(bad, check_files=False)

    arch = Architecture.of(experiment)
    planned = needs(arch, run, experiment.module_groups, 1, 24, "float32", "fp32")
    full = needs(arch, Run(name="full", method="full", params={}, train=run.train), experiment.module_groups, 1, 24,
                 "float32", "fp32")
    assert planned.optimizer == 2 * arch.hidden * 4 < full.optimizer  # AdamW's two moments of the gain only
    assert plan_table(experiment, arch, 1, 80, 8).set_index("run").loc["mine", "method"] == "final_norm"

    model_dir, data = tmp_path / "base", tmp_path / "train.jsonl"
    save_model(tiny_model, tokenizer, model_dir)
    write_jsonl(data, tiny_world["rotate_train"])
    before = load_file(model_dir / "model.safetensors")
    record = finetune(FinetuneJob(model=str(model_dir), train_data=str(data), out=str(tmp_path / "out"),
                                  curve=str(tmp_path / "loss.csv"), run=run, seed=0,
                                  prompt=PromptSettings(max_len=24), log=lambda _: None))
    after = load_file(tmp_path / "out" / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"model.norm.weight"}, record
