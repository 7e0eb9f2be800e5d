# Paths and parameters shared by the rules (no rules here).
import json
import os
import shlex

from cofi.config import model_depth, search_policy, table_reference
from cofi.methods import METHODS, SEARCH_PREFIX, configured_runs, method_of, resolve_run, sweep_groups
from cofi.regions import parse_region_id

RESULTS = f"results/{config['experiment']}"
DATA = f"{RESULTS}/data"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
RUN = f"{RESULTS}/runs/{{run}}/{{task}}/seed{{seed}}"
SEARCH_MODE = config["search"]["mode"]
SEARCH = f"{RESULTS}/search/{SEARCH_MODE}/{{task}}"  # tree and grid side by side
TABLES = f"{RESULTS}/tables"
PLOTS = f"{RESULTS}/plots"
MAIN_TABLE = [f"{TABLES}/main.csv", f"{TABLES}/main.md"]
EMBEDDED_SPLITS = [
    "versatility_train", "know_test", "know_val", "reason_test", "reason_val", "instruct_test",
    "instruct_val", "bio_train", "bio_val", "bio_test", "rotate_train", "rotate_val", "rotate_test",
]  # fmt: skip
MODEL = config["model"]
PROMPT = config["prompt"]
SEARCH_ON = config["search"]["enabled"]
IMPORTANCE = config["importance"]
SEARCH_SEED = config["search"]["seed"] if config["search"]["seed"] is not None else config["seeds"][0]
N_LAYERS = model_depth(config)


def as_json(value):
    """Canonical JSON for params: key order in a config file must never trigger a rerun."""
    return json.dumps(value, sort_keys=True)


def base_model_dir():
    """The user's checkpoint, or the embedded base model the build_base rule makes."""
    return MODEL["path"] or f"{RESULTS}/base_model"


def task_file(task, split):
    """train/test/val file of a task; a user task without val data is selected on its test file."""
    entry = config["tasks"][task]
    if entry[split] is not None:
        return entry[split]
    if split == "val" and entry["train"] is not None:
        return entry["test"]
    return f"{DATA}/{task}_{split}.jsonl"


def suite_file(name, split):
    entry = config["versatility"][name]
    if entry[split] is not None:
        return entry[split]
    if split == "val" and entry["test"] is not None:
        return entry["test"]
    return f"{DATA}/{name}_{split}.jsonl"


def selection_split(task):
    """What the search selects on: 'val', or 'test' where a user gave no validation data."""
    files = [task_file(task, "val")] + [suite_file(n, "val") for n in config["versatility"]]
    tests = [task_file(task, "test")] + [suite_file(n, "test") for n in config["versatility"]]
    return "test" if any(f == t for f, t in zip(files, tests)) else "val"


def suite_spec(path, suite):
    return {"path": path, "type": suite["type"], "metric": suite["metric"]}


def eval_suites(tasks, split):
    """JSON for `cofi evaluate`: Spec on the given tasks, Vers on every versatility suite."""
    spec = {t: suite_spec(task_file(t, split), config["tasks"][t]) for t in tasks}
    vers = {n: suite_spec(suite_file(n, split), s) for n, s in config["versatility"].items()}
    return as_json({"spec": spec, "vers": vers})


def eval_inputs(tasks, split):
    return [task_file(t, split) for t in tasks] + [suite_file(n, split) for n in config["versatility"]]


def importance_source(task):
    """Importance is estimated per task on its own inputs, or once on the versatility set."""
    return task if IMPORTANCE["source"] == "speciality" else "versatility"


def importance_data(source):
    if source != "versatility":
        return task_file(source, "train")
    return IMPORTANCE["versatility_data"] or f"{DATA}/versatility_train.jsonl"


def search_pick(task):
    """The region the task's finished coarse search selected (waits for the search)."""
    with open(checkpoints.search_result.get(task=task).output.result) as handle:
        return parse_region_id(json.load(handle)["selected"])


def method_inputs(w):
    """Whatever a run's method needs besides the base model and the task's data.

    A method that trains the search's pick waits for the search here, but takes the region as a
    parameter, not result.json as an input: a wider search that keeps the pick retrains nothing.
    The wait stays apart from the rule's named inputs so that, while the search is pending (a dry
    run), the job keeps them and its command can still be formatted.
    """
    method, params = resolve_run(config, w.run)
    inputs = {}
    needs = METHODS[method].needs
    if "search_region" in needs:
        search_pick(w.task)
    if "importance" in needs:
        inputs["importance"] = f"{RESULTS}/importance/{importance_source(w.task)}.safetensors"
    if "source_model" in needs:
        inputs["source_model"] = run_file(params["source"], w.task, w.seed, "model")
    if "replay_data" in needs:
        inputs["replay_data"] = params["data"] or f"{DATA}/versatility_train.jsonl"
    return inputs


def finetune_params(w):
    method, params = resolve_run(config, w.run)
    if "search_region" in METHODS[method].needs:
        params |= search_pick(w.task).to_dict()
    return as_json(params)


def finetune_extra_inputs(w, input):
    """--importance / --source-model / --replay-data for the inputs the method needs (quoted by the rule)."""
    flags = {"importance": "--importance", "source_model": "--source-model", "replay_data": "--replay-data"}
    return [part for key, flag in flags.items() if key in input.keys() for part in (flag, input[key])]


def run_file(run, task, seed, name):
    return f"{RESULTS}/runs/{run}/{task}/seed{seed}/{name}"


RUNS = list(configured_runs(config))  # every configured run, sweep lists expanded
SWEEPS = sweep_groups(config)  # {swept run: {variant: "lr=0.001"}}


def run_targets(filename, runs=None):
    return expand(
        f"{RUN}/{filename}",
        run=RUNS if runs is None else runs,
        task=config["tasks"],
        seed=config["seeds"],
    )


# Input functions of the search and table rules (they read checkpoint outputs).
def expanded_ids(depth_file):
    with open(depth_file) as handle:
        return [c["id"] for c in json.load(handle)["expand"]]


def candidate_scores(task, depth_file):
    """{candidate id: its validation score file} for the candidates a depth file expands to."""
    return {c: run_file(SEARCH_PREFIX + c, task, SEARCH_SEED, "val_scores.json") for c in expanded_ids(depth_file)}


def search_step_inputs(w):
    depth = int(w.depth)
    reference = config["search"]["reference"]
    inputs = {"reference": run_file(reference, w.task, SEARCH_SEED, "val_scores.json")}
    if depth > 0:
        previous = checkpoints.search_step.get(task=w.task, depth=depth - 1).output[0]
        inputs["previous"] = previous
        inputs["candidates"] = list(candidate_scores(w.task, previous).values())
    return inputs


def candidate_pairs(w, input):
    return as_json(candidate_scores(w.task, input.previous) if "previous" in input.keys() else {})


def search_depth_files(w):
    """Walk the depths one checkpoint at a time until one expands nothing."""
    files, depth = [], 0
    while True:
        path = checkpoints.search_step.get(task=w.task, depth=depth).output[0]
        files.append(path)
        if not expanded_ids(path):
            return files
        depth += 1


def table_inputs(w):
    """Score files of the base model and every run; with the search, each task's result file and
    its pick's score files at every seed (`cofi table` tells the two kinds apart by content)."""
    first = [r for r in RUNS if r == config["search"]["reference"]]
    inputs = [f"{RESULTS}/scores/base.json"] + run_targets("test_scores.json", first)
    if SEARCH_ON:  # the coarse pick's rows go right after the reference they are measured against
        for task in config["tasks"]:
            result = checkpoints.search_result.get(task=task).output.result
            with open(result) as handle:
                run = json.load(handle)["run"]
            inputs += [result] + [run_file(run, task, seed, "test_scores.json") for seed in config["seeds"]]
    inputs += run_targets("test_scores.json", [r for r in RUNS if r not in first])
    # Sweeps: the validation scores their tuned rows are chosen on.
    return inputs + run_targets("val_scores.json", [v for variants in SWEEPS.values() for v in variants])


# One command line for both evaluation rules; every config value reaches the shell quoted.
EVALUATE_CMD = (
    "python -m cofi evaluate --model {input.model:q} --template {params.template:q} "
    "--suites {params.suites:q} --labels {params.labels:q} --batch-size {params.batch_size} "
    "{params.max_items} --threads {threads} {params.model_flags} "
    "--out {output.scores:q} --predictions {output.predictions:q} > {log:q} 2>&1"
)
COMPUTE = config["compute"]
# Flags of every job that loads a model. Non-default compute settings only, so a config that
# leaves them alone keeps its jobs' params (and finished results) as they were.
MODEL_FLAGS = (
    f"--dtype {MODEL['dtype']}"
    + (" --trust-remote-code" if MODEL["trust_remote_code"] else "")
    + (f" --device {shlex.quote(COMPUTE['device'])}" if COMPUTE["device"] != "auto" else "")
)


def finetune_flags(w):
    """MODEL_FLAGS plus the training-only compute settings and the run's checkpoint directory."""
    flags = MODEL_FLAGS
    if COMPUTE["precision"] != "fp32":
        flags += f" --precision {COMPUTE['precision']}"
    if COMPUTE["gradient_checkpointing"]:
        flags += " --gradient-checkpointing"
    if COMPUTE["checkpoint_every"]:
        # Beside the outputs, not among them: a failed job's outputs are deleted, its checkpoints kept.
        directory = os.path.join(RUN.format(run=w.run, task=w.task, seed=w.seed), "checkpoints")
        flags += f" --checkpoint-every {int(COMPUTE['checkpoint_every'])} --checkpoint-dir {shlex.quote(directory)}"
    return flags


def launcher(w, resources):
    """torchrun, one process per GPU, where a job asks for several GPUs (`gpu` resource); else python."""
    gpus = int(resources.get("gpu", 0) or 0)
    return f"torchrun --standalone --nproc-per-node {gpus}" if gpus > 1 else "python"
MAX_ITEMS = "" if config["evaluation"]["max_items"] is None else f"--max-items {int(config['evaluation']['max_items'])}"


# Landscapes: which models, at which seed, and the score files their Vers drop comes from.
LANDSCAPE = config["landscape"]
LANDSCAPE_SEED = LANDSCAPE["seed"] if LANDSCAPE["seed"] is not None else config["seeds"][0]


def landscape_model(w):
    return base_model_dir() if w.run == "base" else run_file(w.run, w.task, LANDSCAPE_SEED, "model")


def landscape_scores():
    runs = [r for r in LANDSCAPE["runs"] if r != "base"]
    return [f"{RESULTS}/scores/base.json"] + [
        run_file(r, t, LANDSCAPE_SEED, "test_scores.json") for t in config["tasks"] for r in runs
    ]


# Figures made elsewhere, copied next to the result plots: {copy: original}.
SOFT_MASK_USED = any("importance" in METHODS[e["method"]].needs for e in configured_runs(config).values())
COLLECTED = {f"{PLOTS}/search_tree_{t}.png": f"{RESULTS}/search/{SEARCH_MODE}/{t}/tree.png" for t in config["tasks"] if SEARCH_ON}
COLLECTED |= {
    f"{PLOTS}/importance_{s}.png": f"{RESULTS}/importance/{s}.png"
    for s in sorted({importance_source(t) for t in config["tasks"]})
    if SOFT_MASK_USED
}
# Everything the `tables` target rebuilds from the score files (no training, no evaluation).
TABLE_OUTPUTS = [
    *(f"{TABLES}/{name}" for name in ("main.csv", "main.md", "main.tex", "normalised.md", "normalised.tex", "seeds.csv")),
    *(f"{PLOTS}/uni.{ext}" for ext in ("png", "pdf")),
    *(f"{PLOTS}/pareto_{t}.{ext}" for t in config["tasks"] for ext in ("png", "pdf")),
    *COLLECTED,
]
if LANDSCAPE["runs"]:
    TABLE_OUTPUTS += [f"{TABLES}/sharpness.csv", f"{TABLES}/sharpness.md", f"{TABLES}/sharpness_correlation.csv"]

