# The realignment probe (realign.runs): each probed row's models, and the base model's as the control, trained a few
# steps on a handful of versatility examples (a finetune job of method full), then scored again on the test split
# (an evaluate job); the table pairs each row's drop with what came back (cofi.analysis.realign).
REALIGN_DATA = LAYOUT.data_file("realign_examples")
REALIGNED = LAYOUT.realigned("{row}", "{task}", "{seed}", "")


localrules:
    realign_data,
    realign_table,  # cheap file work: never submitted to a cluster


rule realign_data:
    input:
        [suite["path"] for suite in EXP.versatility_val_files().values()],
    output:
        REALIGN_DATA,
    params:
        spec=job_spec("realign-data", suites=EXP.versatility_val_files(), examples=EXP.realign.examples, out=REALIGN_DATA),
    log:
        log_file("realign_data", "realign_data"),
    benchmark:
        benchmark_file("realign_data", "realign_data")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("realign-data")


rule realign:
    input:
        model=lambda w: EXP.realign_source(w.row, w.task, w.seed),
        train=REALIGN_DATA,
    output:
        # Only its scores are kept: a probed model is as large as the run's and is used once.
        model=temp(directory(f"{REALIGNED}model")),
        curve=f"{REALIGNED}loss.csv",
    wildcard_constraints:
        row=any_of(EXP.realign_rows),
    params:
        spec=realign_spec,
        launcher=launcher,
    log:
        log_file("realign", "{row}", "{task}", "seed{seed}"),
    benchmark:
        benchmark_file("realign", "{row}", "{task}", "seed{seed}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.finetune
    resources:
        **training_resources(mem_mb=4000, runtime=60, run_of=lambda w: EXP.realign_run),
    shell:
        job_command("finetune", "{params.launcher}")


rule evaluate_realigned:
    input:
        model=rules.realign.output.model,
        data=lambda w: evaluation_files([w.task], "test"),
    output:
        scores=f"{REALIGNED}test_scores.json",
        predictions=f"{REALIGNED}test_predictions.json",
    wildcard_constraints:
        row=any_of(EXP.realign_rows),
    params:
        spec=realigned_scoring,
    log:
        log_file("evaluate_realigned", "{row}", "{task}", "seed{seed}"),
    benchmark:
        benchmark_file("evaluate_realigned", "{row}", "{task}", "seed{seed}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.evaluate
    resources:
        mem_mb=4000,
        runtime=60,
        **model_resources("evaluation"),
    shell:
        job_command("evaluate")


rule realign_table:
    input:
        base=LAYOUT.base_scores,
        before=[path for _, path in realign_before_runs()],
        after=realign_after_files(),
    output:
        md=f"{TABLES}/realign.md",
        csv=f"{TABLES}/realign.csv",
    params:
        spec=job_spec("realign-table", before=[LAYOUT.base_scores, *(as_run(*pair) for pair in realign_before_runs())],
                      after=realign_after_files(),
                      steps=EXP.realign.steps, examples=EXP.realign.examples, settings=EXP.tables, out_dir=TABLES),
    log:
        log_file("realign_table", "realign_table"),
    benchmark:
        benchmark_file("realign_table", "realign_table")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("realign-table", spec_on_stdin=True)
