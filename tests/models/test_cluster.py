"""What each job asks the cluster for (cofi.models.cluster): from cofi's plan per run and the site layer's cluster: block,
checked in the pure functions, in the sbatch lines the SLURM plugin writes from them, and through a dry run of the
7B example config under the stock GPU profile."""

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake_environment
from cofi.models.cluster import REQUEST_KEYS, SETUP_MINUTES, ClusterError, check_described, model_gpus, training_request
from cofi.config.checks import checked_experiment
from cofi.models.plan import PRESETS, Architecture
from cofi.config.settings import ClusterSettings

A100_NODE = {"gpus_per_node": 8, "gpu_memory_gib": 80, "gpu_model": "a100"}


def example_config(**cluster) -> dict:
    config = yaml.safe_load((REPO / "configs" / "llama7b_example.yaml").read_text())
    return {**config, "cluster": cluster}


def experiment_of(config: dict):
    return checked_experiment(config, check_files=False)


def requests(config: dict, preset: str) -> dict[str, dict]:
    experiment = experiment_of(config)
    arch = Architecture.load(preset)
    return {name: training_request(experiment, arch, run) for name, run in experiment.runs.items()}


def sbatch_line(resources: dict) -> str:
    """The sbatch call the SLURM executor plugin builds from a job's resources (its own functions)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=8)  # the config's threads.finetune
    params = {"run_uuid": "u", "slurm_logfile": "log", "comment_str": "rule_finetune", "account": "",
              "partition": "-p gpu", "workdir": None}
    return get_submit_command(job, params) + set_gres_string(job)


def test_each_training_run_asks_for_the_gpus_its_plan_needs_at_7b():
    asked = requests(example_config(**A100_NODE), "llama2-7b")
    gpus = {name: request.get("gpu") for name, request in asked.items()}
    assert gpus == {"full": 2, "full_sam": 2, "full_2x": 2, "sft_lr1e-05": 2, "sft_lr2e-05": 2, "sft_lr5e-05": 2,
                    "l2_lambda0.0001": 2, "l2_lambda0.001": 2, "replay": 2, "lora": 1, "cofitune": 1,
                    "wiseft_alpha0.25": None, "wiseft_alpha0.5": None, "wiseft_alpha0.75": None}
    assert all(request["gpu_model"] == "a100" and request["cpus_per_gpu"] == 8 for request in asked.values()
               if "gpu" in request)
    # SAM's two passes per step: twice the compute time of the same run without it.
    full, sam = (asked[name]["runtime"] - SETUP_MINUTES for name in ("full", "full_sam"))
    assert abs(sam - 2 * full) <= 1
    # Host memory on the first node: a sharded Full SFT gathers float32 weights there at the end, a one-GPU run
    # reads the bf16 weights once; 8 GiB per process on the node.
    params = Architecture.load("llama2-7b").params
    assert asked["full"]["mem_mb"] == -(-(params * 4 + 2 * 8 * 2**30) // 2**20)
    assert asked["lora"]["mem_mb"] == -(-(params * 2 + 8 * 2**30) // 2**20)
    assert asked["wiseft_alpha0.5"] == {"cpus_per_task": 1, "mem_mb": 8192, "runtime": SETUP_MINUTES}
    line = sbatch_line(asked["full"])
    for flag in ("--gpus=a100:2", "--cpus-per-gpu=8", f"--mem {asked['full']['mem_mb']}", f"-t {asked['full']['runtime']}"):
        assert flag in line, (flag, line)
    assert "--nodes" not in line


def test_a_run_larger_than_a_node_spans_nodes_with_one_srun_task_per_gpu():
    asked = requests(example_config(**A100_NODE), "llama1-33b")
    sam = asked["full_sam"]
    assert {key: sam[key] for key in ("nodes", "tasks_per_node", "gres", "mpi")} == \
        {"nodes": 2, "tasks_per_node": 8, "gres": "gpu:a100:8", "mpi": "srun"}
    assert "gpu" not in sam
    line = sbatch_line(sam)
    for flag in ("--nodes=2", "--ntasks-per-node=8", "--gres=gpu:a100:8", "--cpus-per-task=8"):
        assert flag in line, (flag, line)
    # The same runs with one GPU per node: whole nodes, one task each.
    single = requests(example_config(**{**A100_NODE, "gpus_per_node": 1}), "llama2-7b")["full"]
    assert (single["nodes"], single["tasks"], single["gres"]) == (2, 2, "gpu:a100:1")


def test_a_run_that_cannot_fit_is_refused_naming_the_run_and_the_key():
    config = example_config(**A100_NODE)
    config["compute"]["sharding"] = "hybrid"
    with pytest.raises(ClusterError, match=r"run full_sam: .*compute.sharding hybrid"):
        requests(config, "llama1-33b")
    # A one-GPU run holds the stored weights (21 GiB with its runtime); a sharded one gathers float32 (41 GiB).
    with pytest.raises(ClusterError, match=r"run full: its first node needs 41 GiB .*cluster.node_memory_gib 32"):
        requests(example_config(**A100_NODE, node_memory_gib=32), "llama2-7b")


def test_evaluation_and_importance_take_as_many_of_a_node_gpus_as_the_plan_needs():
    """At the 7B example's batches (evaluation: 32 prompts of 1024 tokens, answers of 96; importance: 32 inputs,
    checkpointed): a 33B model in bf16 plans 115 GiB for generation, so it takes two GPUs, in float32 four, a 7B
    model one; importance shards a 13B model over two GPUs and a 33B one over four. Other GPU jobs take one."""
    def gpus(dtype, preset, job):
        config = example_config(**A100_NODE)
        config["model"]["dtype"] = dtype
        return model_gpus(experiment_of(config), Architecture.load(preset), job)

    assert gpus("bfloat16", "llama2-7b", "evaluation") == 1
    assert gpus("bfloat16", "llama1-33b", "evaluation") == 2
    assert gpus("float32", "llama1-33b", "evaluation") == 4
    assert [gpus("bfloat16", preset, "importance") for preset in ("llama2-7b", "llama2-13b", "llama1-33b")] == [1, 2, 4]
    assert gpus("float32", "llama1-33b", "single") == 1


def test_a_site_layer_cluster_block_reaches_the_config_as_numbers():
    """Snakemake hands a profile's nested config values over as text; cofi reads them back."""
    from snakemake.cli import parse_config
    from snakemake.profiles import ProfileConfigFileParser

    site = "config:\n  cluster: {gpus_per_node: 4, gpu_memory_gib: 40.5, gpu_model: h100}\n"
    import io

    stream = io.StringIO(site)
    stream.name = "/nonexistent/config.yaml"
    given = parse_config(ProfileConfigFileParser().parse(stream)["config"])
    assert given["cluster"]["gpus_per_node"] == "4"  # what Snakemake makes of it
    experiment = experiment_of({**example_config(), **given})
    assert (experiment.cluster.gpus_per_node, experiment.cluster.gpu_memory_gib, experiment.cluster.gpu_model) == \
        (4, 40.5, "h100")


def test_slurm_without_a_cluster_description_is_refused():
    check_described(ClusterSettings(), "local")
    check_described(ClusterSettings(gpus_per_node=0), "slurm")
    with pytest.raises(ClusterError, match="cluster.gpus_per_node"):
        check_described(ClusterSettings(), "slurm")


@pytest.fixture(scope="module")
def seven_b_workflow(tmp_path_factory) -> Path:
    """The workflow with the 7B example config: a 7B config.json (no real weights), a tokenizer, small data files."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from cofi.models.loading import build_word_tokenizer

    workdir = copy_workflow(tmp_path_factory.mktemp("seven_b"))
    model = workdir / "model"
    preset = PRESETS["llama2-7b"]
    LlamaConfig(**preset).save_pretrained(model)
    save_file({"placeholder": torch.zeros(1)}, str(model / "model.safetensors"))
    tokenizer = build_word_tokenizer(["q", "a", "[INST]", "[/INST]", *map(str, range(10))])
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
                               " [/INST]{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}"
                               "{% endfor %}")  # Llama-2-chat's turns, as the example config uses the model's template
    tokenizer.save_pretrained(model)
    config = example_config()
    config.pop("cluster")
    config["model"]["path"] = str(model)
    data = workdir / "data"
    data.mkdir()
    for suite in ("tasks", "versatility"):
        for entry in config[suite].values():
            for split in ("train", "val", "test"):
                if entry.get(split):
                    choice = entry["type"] == "multiple_choice"
                    rows = [{"instruction": "q", "input": str(i), "output": "a"} | (
                        {"choices": ["a", "q"], "answer": 0} if choice else {}) for i in range(8)]
                    entry[split] = str(data / Path(entry[split]).name)
                    Path(entry[split]).write_text("".join(json.dumps(row) + "\n" for row in rows))
    config["runs"]["replay"]["data"] = str(data / "general_sft.jsonl")
    (data / "general_sft.jsonl").write_text(json.dumps({"instruction": "q", "input": "1", "output": "a"}) + "\n")
    (workdir / "seven_b.yaml").write_text(yaml.safe_dump(config))
    (workdir / "site.yaml").write_text("default-resources:\n  slurm_partition: gpu\n"
                                       "config:\n  cluster: {gpus_per_node: 8, gpu_memory_gib: 80, gpu_model: a100}\n")
    return workdir


def test_the_stock_gpu_profile_gives_each_run_its_planned_request(seven_b_workflow):
    """A dry run of the 7B example under the site layer and workflow/profiles/slurm: the finetune job of each run
    carries the request cofi.models.cluster computes for it, the evaluation and importance jobs one GPU of the model."""
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "site.yaml", "--workflow-profile",
                           "workflow/profiles/slurm", "--configfile", "seven_b.yaml"], cwd=seven_b_workflow,
                          env=snakemake_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = re.findall(r"rule (\w+):\n((?:    .*\n)+)", done.stdout)
    asked = {}
    for rule, body in jobs:
        fields = dict(re.findall(r"    (\w+): (.*)", body))
        resources = dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if "=" in item)
        run = re.search(r"run=([^,\s]+)", fields.get("wildcards", ""))
        asked[(rule, run[1] if run else None)] = resources
    expected = requests(example_config(**A100_NODE), "llama2-7b")
    runs = experiment_of(example_config(**A100_NODE)).runs
    assert runs.storage("sft_lr2e-05") == "full"  # it trains what full trains: full's job and files serve both
    for name, request in expected.items():
        if runs.storage(name) != name:
            assert ("finetune", name) not in asked, name
            continue
        got = asked[("finetune", name)]
        assert {key: got.get(key) for key in request} == {key: str(value) for key, value in request.items()}, name
    for rule in ("evaluate_base", "importance"):
        assert (asked[(rule, None)]["gpu"], asked[(rule, None)]["gpu_model"]) == ("1", "a100")
        assert asked[(rule, None)]["mem_mb"] == "32000"  # the profile's, kept beside the rule's GPU keys


def test_a_run_on_slurm_without_a_cluster_description_stops_before_any_submission(seven_b_workflow):
    done = subprocess.run([sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
                           "--configfile", "seven_b.yaml", "--default-resources", "slurm_partition=gpu"],
                          cwd=seven_b_workflow, env=snakemake_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "cofi: config key cluster.gpus_per_node: the workflow runs on SLURM" in done.stderr
    assert "submitted with SLURM jobid" not in done.stdout + done.stderr


def test_every_key_a_request_holds_is_one_the_rule_declares():
    asked = [*requests(example_config(**A100_NODE), "llama2-7b").values(),
             *requests(example_config(**A100_NODE), "llama1-33b").values(),
             *requests(example_config(**{**A100_NODE, "gpus_per_node": 1}), "llama2-7b").values()]
    assert set().union(*asked) <= set(REQUEST_KEYS)


def test_a_run_the_described_cluster_cannot_hold_stops_the_workflow_before_any_job(seven_b_workflow):
    (seven_b_workflow / "small_nodes.yaml").write_text(
        "config:\n  cluster: {gpus_per_node: 8, gpu_memory_gib: 80, node_memory_gib: 32}\n")
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "small_nodes.yaml",
                           "--workflow-profile", "workflow/profiles/slurm", "--configfile", "seven_b.yaml"],
                          cwd=seven_b_workflow, env=snakemake_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "cofi: run full: its first node needs 41 GiB of host memory" in done.stderr, done.stderr[-2000:]


def test_a_job_starts_its_processes_as_its_resources_say():
    """srun with the task geometry spelled out (the job-step plugin strips the allocation's variables), torchrun
    with one process per GPU or per `processes` on one machine, else one python; an mpi value reaches the shell
    quoted."""
    from cofi.models.cluster import launcher

    assert launcher({}) == "python"
    assert launcher({"gpu": 1}) == "python"
    assert launcher({"gpu": 4}) == "torchrun --standalone --nproc-per-node 4"
    assert launcher({"processes": 2, "gpu": 0}) == "torchrun --standalone --nproc-per-node 2"
    assert launcher({"mpi": "srun", "nodes": 2, "tasks_per_node": 8}) == "srun --nodes=2 --ntasks-per-node=8 python"
    assert launcher({"mpi": "srun --mpi=pmix", "tasks": 3}) == "srun --mpi=pmix --ntasks=3 python"
    assert launcher({"mpi": "srun; rm -rf x"}) == "'srun;' rm -rf x python"  # no second command
