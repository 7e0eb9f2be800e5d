# Coarse search as a data-dependent DAG: one checkpoint per depth, then the report.
# Candidates are runs named region-<id> (and region-<id>_lr<lr> at another lr than the reference's: search.lr),
# so a wider beam, a deeper search or a longer lr list reuses finished ones.

SEARCH = LAYOUT.search_dir(EXP.search.name, "{task}")  # tree, grid and snr side by side
SNR_FILE = LAYOUT.search_dir("snr", "matrix_snr.csv")  # the base model's, whatever the task
SEARCH_RESULT_JOB = "search-snr" if EXP.search.mode == "snr" else "search-report"


localrules:
    search_step,
    search_result,  # cheap file work: never submitted to a cluster


checkpoint search_step:
    input:
        unpack(search_step_inputs),
    output:
        f"{SEARCH}/depth{{depth}}.json",
    params:
        spec=search_step_spec,
    log:
        log_file("search_step", EXP.search.name, "{task}", "depth{depth}"),
    benchmark:
        benchmark_file("search_step", EXP.search.name, "{task}", "depth{depth}")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("search-step")


# search.mode snr trains nothing: the base model's matrices' SNR (once per experiment, on a compute node and its GPU
# where the site has them: singular values of every projection) ranks the grid's regions; the result takes the tree's
# place.
rule matrix_snr:
    input:
        EXP.base_model_dir,
    output:
        SNR_FILE,
    params:
        spec=job_spec("matrix-snr", model=EXP.base_model_dir, device=EXP.compute.device, out=SNR_FILE),
    log:
        log_file("matrix_snr"),
    benchmark:
        benchmark_file("matrix_snr")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.importance
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources(),  # one GPU where the site has them: hours of singular values on a CPU at 7B
    shell:
        job_command("matrix-snr")


checkpoint search_result:
    input:
        search_result_inputs,
    output:
        result=f"{SEARCH}/result.json",
        trace=f"{SEARCH}/trace.csv",
        table=f"{SEARCH}/table.md",
        tree=multiext(f"{SEARCH}/tree", ".png", ".pdf"),
    params:
        spec=search_result_spec,
    log:
        log_file("search_result", EXP.search.name, "{task}"),
    benchmark:
        benchmark_file("search_result", EXP.search.name, "{task}")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command(SEARCH_RESULT_JOB)


rule search_all:
    """Target: every task's search result (without rebuilding the tables)."""
    input:
        expand(f"{SEARCH}/result.json", task=TASKS if SEARCH_ON else []),


rule search_picks_scored:
    """Target: every task's pick scored as the searches score candidates (selection split, search seed): what an snr
    pick, which trains nothing while searching, is worth beside a trained search's (make bench-search)."""
    input:
        lambda w: [run_file(search_result(task)["run"], task, EXP.search.seed, f"{EXP.search.scores_split}_scores.json")
                   for task in (TASKS if SEARCH_ON else [])],
