# Result tables and figures, rebuilt from the score files only; `tables:` options rebuild nothing else.
TABLES, PLOTS = LAYOUT.tables, LAYOUT.plots


# Figures made elsewhere, copied next to the result plots: {copy: original}.
COLLECTED = {f"{PLOTS}/search_tree_{t}.png": f"{LAYOUT.search_dir(EXP.search.name, t)}/tree.png"
             for t in TASKS if SEARCH_ON}
COLLECTED |= {f"{PLOTS}/importance_{s}.png": LAYOUT.importance(s, "png")
              for s in sorted({EXP.importance_source(t) for t in TASKS}) if EXP.uses_importance}


localrules:
    main_table,
    result_plots,
    loss_curves,
    claims_table,  # cheap: run where Snakemake runs, never submitted to a cluster


rule main_table:
    input:
        base=LAYOUT.base_scores,
        # Test scores in row order, then the validation scores sweeps' tuned rows are chosen on.
        scores=table_scores,
        searches=search_results,
    output:
        csv=report(f"{TABLES}/main.csv", caption="../workflow/report/main_table.rst", category="Tables"),
        md=f"{TABLES}/main.md",
        tex=f"{TABLES}/main.tex",
        normalised_md=f"{TABLES}/normalised.md",
        normalised_tex=f"{TABLES}/normalised.tex",
        tuned_md=f"{TABLES}/tuned.md",
        tuned_tex=f"{TABLES}/tuned.tex",
        comparisons=f"{TABLES}/comparisons.md",
        comparisons_csv=f"{TABLES}/comparisons.csv",
        seeds=f"{TABLES}/seeds.csv",
        format_md=f"{TABLES}/format.md",
        format_csv=f"{TABLES}/format.csv",
    params:
        spec=table_spec,
    log:
        log_file("main_table", "main_table"),
    benchmark:
        benchmark_file("main_table", "main_table")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("table", spec_on_stdin=True)


rule result_plots:
    input:
        table=rules.main_table.output.csv,
        collect=list(COLLECTED.values()),
    output:
        uni=report(f"{PLOTS}/uni.png", caption="../workflow/report/uni.rst", category="Figures", labels={"figure": "Uni"}),
        uni_pdf=f"{PLOTS}/uni.pdf",
        pareto=[
            report(f"{PLOTS}/pareto_{t}.png", caption="../workflow/report/pareto.rst", category="Figures",
                   labels={"figure": f"Spec vs Vers, {t}"})
            for t in TASKS
        ],
        pareto_pdf=expand(f"{PLOTS}/pareto_{{task}}.pdf", task=TASKS),
        collected=[
            report(c, caption="../workflow/report/collected.rst", category="Search and importance",
                   labels={"figure": os.path.basename(c)})
            for c in COLLECTED
        ],
    params:
        spec=lambda w: job_spec("plots", table=rules.main_table.output.csv, out_dir=PLOTS, collect=COLLECTED),
    log:
        log_file("result_plots", "result_plots"),
    benchmark:
        benchmark_file("result_plots", "result_plots")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("plots", spec_on_stdin=True)


rule loss_curves:
    """The training loss of every configured run on one task (all seeds), for the report."""
    input:
        curves=lambda w: list(loss_curve_files(w.task).values()),
    output:
        png=report(f"{PLOTS}/loss_{{task}}.png", caption="../workflow/report/loss_curves.rst", category="Training",
                   labels={"figure": "training loss, {task}"}),
        pdf=f"{PLOTS}/loss_{{task}}.pdf",
    params:
        spec=lambda w: job_spec("loss-curves", curves=loss_curve_files(w.task), title=f"training loss on {w.task}",
                                out=f"{PLOTS}/loss_{w.task}"),
    log:
        log_file("loss_curves", "{task}"),
    benchmark:
        benchmark_file("loss_curves", "{task}")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("loss-curves", spec_on_stdin=True)


LOSS_CURVES = expand(rules.loss_curves.output, task=TASKS)


rule claims_table:
    """The papers' claims against this experiment's scores, one line each, with a verdict from a stated rule."""
    input:
        base=LAYOUT.base_scores,
        scores=table_scores,
        searches=search_results,
        sharpness=[f"{TABLES}/sharpness.csv"] if EXP.landscape.runs else [],
        curves=lambda w: [curve["path"] for curve in forecast_curves()],
    output:
        md=f"{TABLES}/claims.md",
        csv=f"{TABLES}/claims.csv",
        forecast=multiext(f"{PLOTS}/kl_forecast", ".png", ".pdf"),
    params:
        spec=lambda w: job_spec(
            "claims", scores=[LAYOUT.base_scores, *table_score_args(w)], searches=search_results(w),
            groups=EXP.runs.sweeps, rows=EXP.claim_rows, settings=EXP.tables,
            sharpness=f"{TABLES}/sharpness.csv" if EXP.landscape.runs else None, curves=forecast_curves(),
            out_dir=TABLES, forecast_plot=f"{PLOTS}/kl_forecast"),
    log:
        log_file("claims_table", "claims_table"),
    benchmark:
        benchmark_file("claims_table", "claims_table")
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        job_command("claims", spec_on_stdin=True)


# Everything the `tables` target rebuilds from the score files (no training, no evaluation).
TABLE_OUTPUTS = [
    *rules.main_table.output,
    *(f"{PLOTS}/uni.{ext}" for ext in ("png", "pdf")),
    *(f"{PLOTS}/pareto_{t}.{ext}" for t in TASKS for ext in ("png", "pdf")),
    *COLLECTED,
    *rules.claims_table.output,
]
if EXP.landscape.runs:
    TABLE_OUTPUTS += [f"{TABLES}/sharpness.csv", f"{TABLES}/sharpness.md", f"{TABLES}/sharpness_correlation.csv"]
