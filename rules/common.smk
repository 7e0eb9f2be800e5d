# Shared by every rules/*.smk file. The experiment, where its files go, how a job loads a model, and the
# input functions of each rule file (Snakemake's linter keeps functions apart from rules), by file.
import json
import os
import re

import cofi.jobs.interface
import cofi.models.cluster
import cofi.search.policy
from cofi.config.candidates import split_of
from cofi.config.experiment import SPLITS
from cofi.config.names import BASE_ROW
from cofi.jobs import job_class
from cofi.models.kernels import KERNELS_VARIABLE
from cofi.models.plan import Architecture
from cofi.config.settings import to_dict

EXP = EXPERIMENT  # the typed experiment the Snakefile built from the validated config
LAYOUT = EXP.layout
TASKS = list(EXP.tasks)
RUNS = list(EXP.runs)  # every configured run, sweep lists expanded
SWEEP_VARIANTS = [variant for variants in EXP.runs.sweeps.values() for variant in variants]
SEARCH_ON = EXP.search.enabled
# A run's files: the path pattern of the rules that make them (wildcards run, task, seed).
RUN_DIR = LAYOUT.run_dir("{run}", "{task}", "{seed}")


def run_file(run, task, seed, name):
    """Where a run's file is: a run that trains what an earlier run trains uses that run's (EXP.runs.stored_as)."""
    return EXP.run_file(run, task, seed, name)


def as_run(run, path):
    """A score file as the table and sharpness jobs take it: RUN=PATH where the file is another run's."""
    return path if EXP.runs.storage(run) == run else f"{run}={path}"


# A job's log and benchmark share their path under logs/ and benchmarks/: `make bench` pairs them.
def log_file(rule, *parts):
    return os.path.join(LAYOUT.logs, rule, *parts) + ".log"


def benchmark_file(rule, *parts):
    return os.path.join(LAYOUT.benchmarks, rule, *parts) + ".tsv"


def job_spec(command, **values):
    """A job's spec, the one parameter it is passed: the job built from ``values`` (a bad key stops the workflow
    here, naming it), as canonical JSON of the keys off their defaults (cofi.jobs.interface).

    A rule's spec function takes the wildcards alone and finds its paths as the rule's input and output do:
    Snakemake leaves a parameter derived from ``input``, ``output``, ``threads`` or ``resources`` out of its
    rerun trigger, so a spec built from them would let a changed config rerun nothing."""
    return cofi.jobs.interface.spec_json(job_class(command), values, f"the {command} job's spec")


def job_command(command, launcher="python", spec_on_stdin=False):
    """The shell command that runs job ``command`` with its spec, with the threads Snakemake gives it where it
    computes (the process's, not the job's, so fewer cores rerun nothing), into its log.

    ``spec_on_stdin``: for a job whose spec lists every run's files (a table's), which grows past what Linux lets
    one argument of a program hold (128 KiB; the fair study's claims spec is 150 KB): the shell's own printf, a
    builtin that starts no program, pipes the spec in."""
    computes = job_class(command).computes
    threads = " --threads {threads}" if computes else ""
    # The kernels' switch travels in the environment: it must be read before torch starts (cofi.models.kernels).
    kernels = f"{KERNELS_VARIABLE}=native " if computes and EXP.compute.cpu_kernels == "native" else ""
    if spec_on_stdin:
        return f"printf '%s' {{params.spec:q}} | {kernels}{launcher} -m cofi {command} --spec -{threads} > {{log:q}} 2>&1"
    return f"{kernels}{launcher} -m cofi {command} --spec {{params.spec:q}}{threads} > {{log:q}} 2>&1"


# How every job that loads a model loads it (the config's model section; where, the compute section).
LOADING = {"dtype": EXP.model.dtype, "trust_remote_code": EXP.model.trust_remote_code}
ON_DEVICE = {**LOADING, "device": EXP.compute.device}
PROMPT = EXP.prompt


# --- what a job asks the cluster for (config key cluster, from the site layer) -----------


# The model's architecture, for the plan; read only where the site describes GPUs. A run the described cluster cannot
# hold stops the workflow here, before any job.
ARCHITECTURE = Architecture.of(EXP) if EXP.cluster.has_gpus else None
if ARCHITECTURE is not None:
    try:
        cofi.models.cluster.check_requests(EXP, ARCHITECTURE)
    except cofi.models.cluster.ClusterError as error:
        raise SystemExit(f"cofi: {error}")


_TRAINING_REQUESTS = {}  # (run name, attempt) -> the plan's request: planned once, asked for each key


def training_request(run, attempt):
    key = (run.name, attempt)
    if key not in _TRAINING_REQUESTS:
        _TRAINING_REQUESTS[key] = cofi.models.cluster.training_request(EXP, ARCHITECTURE, run, attempt)
    return _TRAINING_REQUESTS[key]


def training_resources(mem_mb, runtime, run_of=lambda w: EXP.run(w.run)):
    """A finetune job's resources: from the plan for its run (``run_of(wildcards)``) where the site describes GPUs
    (cofi.models.cluster: a key the run does not need is None, which Snakemake leaves out), else ``mem_mb`` and
    ``runtime`` for a workstation."""
    if not EXP.cluster.has_gpus:
        return {"mem_mb": mem_mb, "runtime": runtime}
    return {key: lambda w, attempt, key=key: training_request(run_of(w), attempt).get(key)
            for key in cofi.models.cluster.REQUEST_KEYS}


def model_resources(job="single"):
    """The GPU keys of a job that loads the whole model: "evaluation" and "importance" ask for the GPUs the plan
    gives them (the profile adds the memory and runtime)."""
    return cofi.models.cluster.model_request(EXP, ARCHITECTURE, job) if EXP.cluster.has_gpus else {}


# --- finetune.smk's input functions --------------------------------------------


def await_search_pick(w):
    """A run that trains the search's pick waits for the task's search: asking a pending checkpoint for its result
    stops Snakemake's evaluation of this job's inputs until the checkpoint has run (Snakemake's own mechanism)."""
    if EXP.trains_pick(w.run):
        search_result(w.task)


def method_inputs(w):
    """The files the run's method needs (its Needs, by name). A method that trains the search's pick
    waits for the search here, but takes the region as a parameter (run_spec), not result.json as an
    input: a wider search that keeps the pick retrains nothing. The wait stays apart from the rule's
    named inputs so that, while the search is pending (a dry run), the job keeps them."""
    run = EXP.run(w.run)
    method = EXP.method_of(w.run)
    await_search_pick(w)
    return {need.name: need.path(EXP, run, w.task, w.seed) for need in method.needs}


def run_spec(w):
    """The run as the job gets it; a run training the search's pick gets the pick's region (and its lr)."""
    if EXP.trains_pick(w.run):
        return EXP.candidates.with_pick(EXP.run(w.run), search_result(w.task))
    return EXP.run(w.run).spec()


def checkpoint_dir(w):
    """Beside the outputs, not among them: a failed job's outputs are deleted, its checkpoints kept."""
    return f"{LAYOUT.run_dir(w.run, w.task, w.seed)}/checkpoints" if EXP.compute.checkpoint_every else None


def finetune_spec(w):
    run_dir = LAYOUT.run_dir(w.run, w.task, w.seed)
    return job_spec("finetune", model=EXP.base_model_dir, train_data=EXP.tasks[w.task].file("train"),
                    run=run_spec(w), seed=int(w.seed), prompt=PROMPT, compute=EXP.compute, inputs=method_inputs(w),
                    forgetting=EXP.forgetting_samples(w.run, w.task), checkpoint_dir=checkpoint_dir(w),
                    out=f"{run_dir}/model", curve=f"{run_dir}/loss.csv", **LOADING)


def forgetting_inputs(w):
    """The files a run that watches its forgetting measures on (training.kl_every)."""
    samples = EXP.forgetting_samples(w.run, w.task)
    if samples is None:
        return {}
    return {"forgetting_task": samples["task"]["path"],
            **{f"forgetting_{name}": suite["path"] for name, suite in samples["vers"].items()}}


def launcher(w, resources):
    """How a job that may run several processes starts them (cofi.models.cluster.launcher)."""
    return cofi.models.cluster.launcher(resources)




# --- evaluate.smk's input functions --------------------------------------------


def evaluation_files(tasks, split):
    suites = EXP.evaluation_suites(tasks, split)
    return [suite["path"] for group in ("spec", "vers") for suite in suites[group].values() if "path" in suite]


def scoring(model, suites, labels, scores, predictions, subset=None, adapter=None):
    """One score file of an evaluation job: its model, suites, labels and outputs (and the sample of items, where the
    search scores a sample: search.eval_items; the adapter applied unmerged: evaluation.lora)."""
    return {"model": model, "suites": suites, "labels": labels, "out": scores, "predictions": predictions,
            **({"subset": subset} if subset else {}), **({"adapter": adapter} if adapter else {})}


def evaluate_spec(scorings):
    """An evaluation job's spec: its score files, scored as the config's evaluation section says."""
    return job_spec("evaluate", scorings=scorings, prompt=PROMPT, generation=EXP.generation,
                    batch_size=EXP.evaluation.batch_size, max_items=EXP.evaluation.max_items,
                    backend=EXP.evaluation.backend, precision=EXP.compute.precision, **ON_DEVICE)


def score_files(run, task, seeds, splits):
    """{(seed, split): (score file, predictions file)} of a run (wildcard values or patterns)."""
    return {(seed, split): tuple(f"{LAYOUT.run_dir(run, task, seed)}/{split}_{kind}.json" for kind in ("scores", "predictions"))
            for seed in seeds for split in splits}


def run_scorings(w, seeds, stems):
    """Every score file of a run's evaluation job, each seed's splits together (the job loads each model once). A
    stem is a split, or a split's seeded sample of items (cofi.config.candidates.split_of). Under evaluation.lora:
    adapter, a run whose method saves an adapter is scored as the base model with it."""
    adapter = EXP.method_of(w.run).adapter if EXP.evaluation.lora == "adapter" else None
    scorings = []
    for (seed, stem), files in score_files(w.run, w.task, seeds, stems).items():
        split, subset = split_of(stem)
        model = f"{LAYOUT.run_dir(w.run, w.task, seed)}/model"
        scorings.append(scoring(EXP.base_model_dir if adapter else model, EXP.evaluation_suites([w.task], split),
                                {"method": w.run, "task": w.task, "seed": int(seed), "split": split}, *files, subset,
                                f"{model}/{adapter}" if adapter else None))
    return scorings


# Configured runs with files of their own are scored at every seed in one job (evaluate.smk), on the splits their
# rows need: {splits: runs}. Sweep variants need validation scores too: their tuned rows are chosen on them.
SWEPT = sorted({EXP.runs.storage(variant) for variant in SWEEP_VARIANTS})
RUNS_BY_SPLITS = {("test",): [r for r in RUNS if EXP.runs.storage(r) == r and r not in SWEPT], SPLITS: SWEPT}


def any_of(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(map(re.escape, names)) or "(?!)"


# --- search.smk's input functions ----------------------------------------------


def expanded_ids(depth_file):
    with open(depth_file) as handle:
        return [c["id"] for c in json.load(handle)["expand"]]


def candidate_scores(task, depth_file):
    """{candidate id: [{lr, run, its validation score file} at each of search.lr]} for the candidates a depth
    file expands to."""
    return {c: [{"lr": lr, "run": (run := EXP.candidates.name(c, lr)),
                 "scores": run_file(run, task, EXP.search.seed, f"{EXP.search.scores_split}_scores.json")}
                for lr in EXP.search.lrs] for c in expanded_ids(depth_file)}


def search_step_inputs(w):
    """Depth 0 reads the reference run's scores; depth d also the previous depth's file (waiting for that
    checkpoint) and the scores of the candidates it expanded to."""
    inputs = {"reference": run_file(EXP.search.reference, w.task, EXP.search.seed,
                                    f"{EXP.search.scores_split}_scores.json")}
    if int(w.depth) > 0:
        previous = checkpoints.search_step.get(task=w.task, depth=int(w.depth) - 1).output[0]
        inputs["previous"] = previous
        inputs["candidates"] = [v["scores"] for variants in candidate_scores(w.task, previous).values() for v in variants]
    return inputs


def search_step_spec(w):
    inputs = search_step_inputs(w)
    previous = inputs.get("previous")
    return job_spec("search-step", task=w.task, depth=int(w.depth), policy=EXP.search.policy, n_layers=EXP.n_layers,
                    split=EXP.selection_split(w.task), reference=inputs["reference"],
                    reference_run={"run": EXP.search.reference, "lr": EXP.search.reference_lr}, previous=previous,
                    candidates=candidate_scores(w.task, previous) if previous else {},
                    out=f"{LAYOUT.search_dir(EXP.search.name, w.task)}/depth{w.depth}.json")


def search_depth_files(w):
    """Walk the depths one checkpoint at a time until one expands nothing."""
    files, depth = [], 0
    while True:
        path = checkpoints.search_step.get(task=w.task, depth=depth).output[0]
        files.append(path)
        if not expanded_ids(path):
            return files
        depth += 1


def search_result_inputs(w):
    """The depth files of a trained search; the base model's matrix SNR for search.mode snr."""
    return [SNR_FILE] if EXP.search.mode == "snr" else search_depth_files(w)


def search_result_spec(w):
    out_dir = LAYOUT.search_dir(EXP.search.name, w.task)
    if EXP.search.mode == "snr":
        regions = cofi.search.policy.first_candidates(EXP.search.policy, EXP.n_layers)
        return job_spec("search-snr", task=w.task, snr=SNR_FILE, policy=EXP.search.policy, groups=EXP.module_groups,
                        n_layers=EXP.n_layers, lr=EXP.search.reference_lr, out_dir=out_dir,
                        runs={c["id"]: EXP.candidates.name(c["id"], EXP.search.reference_lr) for c in regions})
    return job_spec("search-report", task=w.task, depth_files=search_depth_files(w), n_layers=EXP.n_layers,
                    out_dir=out_dir)


def search_result(task):
    """The task's finished search result (waits for the search)."""
    with open(checkpoints.search_result.get(task=task).output.result) as handle:
        return json.load(handle)


# --- realign.smk's input functions ---------------------------------------------


def realign_spec(w):
    """The probe's training: the row's model (or the base model), a few steps of method full on the examples."""
    return job_spec("finetune", model=EXP.realign_source(w.row, w.task, w.seed), train_data=REALIGN_DATA,
                    run=EXP.realign_run.spec(), seed=int(w.seed), prompt=PROMPT, compute=EXP.compute,
                    out=LAYOUT.realigned(w.row, w.task, w.seed, "model"),
                    curve=LAYOUT.realigned(w.row, w.task, w.seed, "loss.csv"), **LOADING)


def realigned_scoring(w):
    """The probed model scored as the row was: its task's Spec and every Vers suite, test split."""
    files = [LAYOUT.realigned(w.row, w.task, w.seed, f"test_{kind}.json") for kind in ("scores", "predictions")]
    return evaluate_spec([scoring(LAYOUT.realigned(w.row, w.task, w.seed, "model"), EXP.evaluation_suites([w.task], "test"),
                                  {"method": w.row, "task": w.task, "seed": int(w.seed), "split": "test"}, *files)])


def realign_before_runs():
    """(run, test score file) of each probed row at every task and seed."""
    return [(run, run_file(run, task, seed, "test_scores.json"))
            for run in EXP.realign.runs for task in TASKS for seed in EXP.seeds]


def realign_after_files():
    return [LAYOUT.realigned(row, task, seed, "test_scores.json")
            for row in EXP.realign_rows for task in TASKS for seed in EXP.seeds]


# --- tables.smk's input functions ----------------------------------------------


def table_score_runs(w):
    """(run, test score file) of the reference, then each task's coarse pick at every seed (waiting for the
    searches), then every other run: the order of the table's rows. The validation scores of sweep variants
    (their tuned rows are chosen on them) come last."""
    reference = [r for r in RUNS if r == EXP.search.reference]
    runs = [(r, t, s) for r in reference for t in TASKS for s in EXP.seeds]
    for task in TASKS if SEARCH_ON else []:
        runs += [(search_result(task)["run"], task, s) for s in EXP.seeds]
    runs += [(r, t, s) for r in RUNS if r not in reference for t in TASKS for s in EXP.seeds]
    pairs = [(r, run_file(r, t, s, "test_scores.json")) for r, t, s in runs]
    return pairs + [(r, run_file(r, t, s, "val_scores.json")) for r in SWEEP_VARIANTS for t in TASKS for s in EXP.seeds]


def table_scores(w):
    return [path for _, path in table_score_runs(w)]


def table_score_args(w):
    return [as_run(run, path) for run, path in table_score_runs(w)]


def table_spec(w):
    return job_spec("table", scores=[LAYOUT.base_scores, *table_score_args(w)], searches=search_results(w),
                    out_dir=LAYOUT.tables, reference=EXP.table_reference, groups=EXP.runs.sweeps,
                    compare_to=[r for r in (EXP.claim_rows.full_tuned,) if r], settings=EXP.tables,
                    selected_on_test=EXP.selected_on_test(),
                    # What a complete table holds: the job refuses a partial input list (docs/known-issues.md).
                    expect={"runs": RUNS, "sweeps": SWEEP_VARIANTS, "tasks": TASKS, "seeds": EXP.seeds,
                            "searched": TASKS if SEARCH_ON else []})


def search_results(w):
    return [checkpoints.search_result.get(task=task).output.result for task in (TASKS if SEARCH_ON else [])]


def forecast_curves():
    """The loss curves of the runs that measure their KL (training.kl_every), each with its steps: the forecast
    claim's inputs (a run that trains exactly what an earlier one trains is that run, not a second point)."""
    return [{"method": run, "task": task, "seed": seed, "steps": EXP.run(run).train.steps,
             "path": run_file(run, task, seed, "loss.csv")}
            for run in RUNS if EXP.watches_forgetting(run) and EXP.runs.storage(run) == run
            for task in TASKS for seed in EXP.seeds]


def loss_curve_files(task):
    """{label: loss.csv} of every configured run on ``task``, at each seed."""
    return {f"{run} seed {seed}" if len(EXP.seeds) > 1 else run: run_file(run, task, seed, "loss.csv")
            for run in RUNS for seed in EXP.seeds}


# --- analysis.smk's input functions --------------------------------------------


def landscape_model(w):
    """The model a landscape probes: the base model, or a run's at the landscape seed."""
    return EXP.base_model_dir if w.run == BASE_ROW else run_file(w.run, w.task, EXP.landscape_seed, "model")
