# Coarse search as a data-dependent DAG: one checkpoint per depth, then the report.
# Candidates are runs named region-<id>, so a wider beam or a deeper search reuses finished ones.


def search_step_inputs(w):
    depth = int(w.depth)
    reference = config["search"]["reference"]
    inputs = {"reference": run_file(reference, w.task, SEARCH_SEED, "val_scores.json")}
    if depth > 0:
        previous = checkpoints.search_step.get(task=w.task, depth=depth - 1).output[0]
        with open(previous) as handle:
            expand_ids = [c["id"] for c in json.load(handle)["expand"]]
        inputs["previous"] = previous
        inputs["candidates"] = [run_file(SEARCH_PREFIX + c, w.task, SEARCH_SEED, "val_scores.json") for c in expand_ids]
    return inputs


def candidate_pairs(w, input):
    """JSON {candidate id: its score file}, from the run folder names."""
    return json.dumps({path.split("/runs/")[1].split("/")[0][len(SEARCH_PREFIX):]: path for path in input.get("candidates", [])})


checkpoint search_step:
    input:
        unpack(search_step_inputs),
    output:
        f"{SEARCH}/depth{{depth}}.json",
    params:
        policy=lambda w: json.dumps(search_policy(config).__dict__),
        n_layers=N_LAYERS,
        split=lambda w: selection_split(w.task),
        previous=lambda w, input: ["--previous", input.previous] if "previous" in input.keys() else [],
        candidates=candidate_pairs,
    log:
        f"{LOGS}/search/{{task}}/depth{{depth}}.log",
    benchmark:
        f"{BENCH}/search_step/{{task}}/depth{{depth}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi search-step --task {wildcards.task:q} --depth {wildcards.depth} "
        "--policy {params.policy:q} --n-layers {params.n_layers} --split {params.split} "
        "--reference {input.reference:q} {params.previous:q} --candidates {params.candidates:q} "
        "--out {output:q} > {log:q} 2>&1"


def search_depth_files(w):
    """Walk the depths one checkpoint at a time until one expands nothing."""
    files, depth = [], 0
    while True:
        path = checkpoints.search_step.get(task=w.task, depth=depth).output[0]
        files.append(path)
        with open(path) as handle:
            if not json.load(handle)["expand"]:
                return files
        depth += 1


checkpoint search_result:
    input:
        search_depth_files,
    output:
        result=f"{SEARCH}/result.json",
        trace=f"{SEARCH}/trace.csv",
        table=f"{SEARCH}/table.md",
        tree=multiext(f"{SEARCH}/tree", ".png", ".pdf"),
    params:
        n_layers=N_LAYERS,
        out_dir=lambda w, output: os.path.dirname(output.result),
    log:
        f"{LOGS}/search/{{task}}/result.log",
    benchmark:
        f"{BENCH}/search_result/{{task}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi search-report --task {wildcards.task:q} --n-layers {params.n_layers} "
        "--out-dir {params.out_dir:q} {input:q} > {log:q} 2>&1"
