# Result tables, rebuilt from the score files only.


def table_inputs(w):
    """Score files of the base model and every run; with the search, each task's pick at every seed."""
    inputs = {"scores": [f"{RESULTS}/scores/base.json"] + run_targets("test_scores.json"), "searches": []}
    if SEARCH_ON:
        for task in config["tasks"]:
            result = checkpoints.search_result.get(task=task).output.result
            with open(result) as handle:
                run = json.load(handle)["run"]
            inputs["searches"].append(result)
            inputs["scores"] += [run_file(run, task, seed, "test_scores.json") for seed in config["seeds"]]
    return inputs


rule main_table:
    input:
        unpack(table_inputs),
    output:
        csv=MAIN_TABLE[0],
        md=MAIN_TABLE[1],
    params:
        searches=lambda w, input: ["--searches", *input.searches] if getattr(input, "searches", None) else [],
    log:
        f"{LOGS}/main_table.log",
    benchmark:
        f"{BENCH}/main_table/main_table.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi table {input.scores:q} {params.searches:q} --csv {output.csv:q} "
        "--md {output.md:q} > {log:q} 2>&1"
