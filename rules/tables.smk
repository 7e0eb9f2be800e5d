# Result tables and figures, rebuilt from the score files only; `tables:` options rebuild nothing else.


rule main_table:
    input:
        table_inputs,
    output:
        csv=report(f"{TABLES}/main.csv", caption="../workflow/report/main_table.rst", category="Tables"),
        md=f"{TABLES}/main.md",
        tex=f"{TABLES}/main.tex",
        normalised_md=f"{TABLES}/normalised.md",
        normalised_tex=f"{TABLES}/normalised.tex",
        seeds=f"{TABLES}/seeds.csv",
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        reference=table_reference(config),
        groups=lambda w: as_json(SWEEPS),
        digits=config["tables"]["digits"],
        std="--std" if config["tables"]["show_std"] else "--no-std",
        bold="--bold" if config["tables"]["bold_best"] else "--no-bold",
        # What a complete table holds: the job refuses a partial input list (README, Known issues).
        expect=lambda w: as_json({"runs": RUNS, "sweeps": [v for vs in SWEEPS.values() for v in vs],
                                  "tasks": list(config["tasks"]), "seeds": config["seeds"],
                                  "searched": list(config["tasks"]) if SEARCH_ON else []}),
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
        "python -m cofi table {input:q} --out-dir {params.out_dir:q} --reference {params.reference:q} "
        "--groups {params.groups:q} --expect {params.expect:q} --digits {params.digits} {params.std} {params.bold} "
        "> {log:q} 2>&1"


rule result_plots:
    input:
        table=MAIN_TABLE[0],
        collect=list(COLLECTED.values()),
    output:
        uni=report(f"{PLOTS}/uni.png", caption="../workflow/report/uni.rst", category="Figures", labels={"figure": "Uni"}),
        uni_pdf=f"{PLOTS}/uni.pdf",
        pareto=[
            report(f"{PLOTS}/pareto_{t}.png", caption="../workflow/report/pareto.rst", category="Figures", labels={"figure": f"Spec vs Vers, {t}"})
            for t in config["tasks"]
        ],
        pareto_pdf=expand(f"{PLOTS}/pareto_{{task}}.pdf", task=config["tasks"]),
        collected=[
            report(c, caption="../workflow/report/collected.rst", category="Search and importance", labels={"figure": os.path.basename(c)})
            for c in COLLECTED
        ],
    params:
        out_dir=lambda w, output: os.path.dirname(output.uni),
        collect=lambda w: as_json(COLLECTED),
    log:
        f"{LOGS}/result_plots.log",
    benchmark:
        f"{BENCH}/result_plots/result_plots.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi plots --table {input.table:q} --out-dir {params.out_dir:q} --collect {params.collect:q} "
        "> {log:q} 2>&1"
