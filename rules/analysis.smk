# Loss landscapes of chosen runs (and the base model), and their sharpness against the Vers drop.
from cofi.config.names import BASE_ROW

LANDSCAPE, LANDSCAPE_SEED = EXP.landscape, EXP.landscape_seed
LANDSCAPE_RUNS = [r for r in LANDSCAPE.runs if r != BASE_ROW]
LANDSCAPE_SCORES = [(r, run_file(r, t, LANDSCAPE_SEED, "test_scores.json")) for t in TASKS for r in LANDSCAPE_RUNS]

rule landscape:
    input:
        model=landscape_model,
        task_data=lambda w: EXP.tasks[w.task].file("train"),
        vers_data=[suite.file("val") for suite in EXP.versatility.values()],
    output:
        json=LAYOUT.landscape("{task}", "{run}"),
        plot=report(
            LAYOUT.landscape("{task}", "{run}", "png"),
            caption="../workflow/report/landscape.rst",
            category="Landscapes",
            subcategory="{task}",
            labels={"run": "{run}", "task": "{task}"},
        ),
        plot_pdf=LAYOUT.landscape("{task}", "{run}", "pdf"),
    params:
        spec=lambda w: job_spec(
            "landscape", model=landscape_model(w), task_data=EXP.tasks[w.task].file("train"),
            vers_suites={name: suite.spec("val") for name, suite in EXP.versatility.items()},
            options={k: v for k, v in to_dict(LANDSCAPE).items() if k not in ("runs", "seed")},
            labels={"run": w.run, "task": w.task, "seed": LANDSCAPE_SEED}, prompt=PROMPT,
            out=LAYOUT.landscape(w.task, w.run), plot=LAYOUT.landscape(w.task, w.run, "png")[: -len(".png")],
            **ON_DEVICE),
    log:
        log_file("landscape", "{task}", "{run}"),
    benchmark:
        benchmark_file("landscape", "{task}", "{run}")
    conda:
        "../envs/cofi.yaml"
    threads: EXP.threads.evaluate
    resources:
        mem_mb=4000,
        runtime=30,
        **model_resources(),
    shell:
        job_command("landscape")


localrules:
    sharpness_table,  # cheap: never submitted to a cluster


rule sharpness_table:
    input:
        landscapes=expand(rules.landscape.output.json, task=TASKS, run=LANDSCAPE.runs),
        base_scores=LAYOUT.base_scores,
        scores=[path for _, path in LANDSCAPE_SCORES],
    output:
        csv=report(f"{LAYOUT.tables}/sharpness.csv", caption="../workflow/report/sharpness.rst", category="Landscapes"),
        md=f"{LAYOUT.tables}/sharpness.md",
        correlation=report(f"{LAYOUT.tables}/sharpness_correlation.csv", caption="../workflow/report/sharpness.rst",
                           category="Landscapes"),
        curves=expand(f"{LAYOUT.plots}/landscape_{{task}}.{{ext}}", task=TASKS, ext=("png", "pdf")),
    params:
        spec=lambda w: job_spec(
            "sharpness", landscapes=expand(rules.landscape.output.json, task=TASKS, run=LANDSCAPE.runs),
            # RUN=PATH where a run uses another's files
            scores=[LAYOUT.base_scores, *(as_run(run, path) for run, path in LANDSCAPE_SCORES)],
            out_dir=LAYOUT.tables, plot_dir=LAYOUT.plots),
    log:
        log_file("sharpness_table", "sharpness_table"),
    benchmark:
        benchmark_file("sharpness_table", "sharpness_table")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("sharpness", spec_on_stdin=True)
