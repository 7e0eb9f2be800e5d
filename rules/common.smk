# Paths and parameters shared by the rules (no rules here).
import json
import os

RESULTS = f"results/{config['experiment']}"
DATA = f"{RESULTS}/data"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
RUN = f"{RESULTS}/runs/{{method}}/{{task}}/seed{{seed}}"
MAIN_TABLE = [f"{RESULTS}/tables/main.csv", f"{RESULTS}/tables/main.md"]
EMBEDDED_SPLITS = [
    "versatility_train", "know_test", "reason_test", "instruct_test",
    "bio_train", "bio_test", "rotate_train", "rotate_test",
]  # fmt: skip
MODEL = config["model"]
PROMPT = config["prompt"]


def base_model_dir():
    """The user's checkpoint, or the embedded base model the build_base rule makes."""
    return MODEL["path"] or f"{RESULTS}/base_model"


def task_file(task, split):
    return config["tasks"][task][split] or f"{DATA}/{task}_{split}.jsonl"


def suite_file(name):
    return config["versatility"][name]["test"] or f"{DATA}/{name}_test.jsonl"


def suite_spec(path, suite):
    return {"path": path, "type": suite["type"], "metric": suite["metric"]}


def eval_suites(tasks):
    """JSON for `cofi evaluate`: Spec on the given tasks, Vers on every versatility suite."""
    spec = {t: suite_spec(task_file(t, "test"), config["tasks"][t]) for t in tasks}
    vers = {n: suite_spec(suite_file(n), s) for n, s in config["versatility"].items()}
    return json.dumps({"spec": spec, "vers": vers})


def eval_inputs(tasks):
    return [task_file(t, "test") for t in tasks] + [suite_file(n) for n in config["versatility"]]


def run_targets(filename):
    return expand(
        f"{RUN}/{filename}",
        method=config["methods"],
        task=config["tasks"],
        seed=config["seeds"],
    )


# One command line for both evaluation rules; every config value reaches the shell quoted.
EVALUATE_CMD = (
    "python -m cofi evaluate --model {input.model:q} --template {params.template:q} "
    "--suites {params.suites:q} --labels {params.labels:q} --batch-size {params.batch_size} "
    "{params.max_items} --threads {threads} {params.model_flags} "
    "--out {output.scores:q} --predictions {output.predictions:q} > {log:q} 2>&1"
)
MODEL_FLAGS = f"--dtype {MODEL['dtype']}" + (" --trust-remote-code" if MODEL["trust_remote_code"] else "")
MAX_ITEMS = "" if config["evaluation"]["max_items"] is None else f"--max-items {int(config['evaluation']['max_items'])}"
