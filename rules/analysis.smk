# Loss landscapes of chosen runs (and the base model), and their sharpness against the Vers drop.


rule landscape:
    input:
        model=landscape_model,
        task_data=lambda w: task_file(w.task, "train"),
        vers_data=[suite_file(n, "val") for n in config["versatility"]],
    output:
        json=f"{RESULTS}/landscape/{{task}}/{{run}}.json",
        plot=report(
            f"{RESULTS}/landscape/{{task}}/{{run}}.png",
            caption="../workflow/report/landscape.rst",
            category="Landscapes",
            subcategory="{task}",
            labels={"run": "{run}", "task": "{task}"},
        ),
        plot_pdf=f"{RESULTS}/landscape/{{task}}/{{run}}.pdf",
    params:
        suites=lambda w: as_json({n: suite_spec(suite_file(n, "val"), s) for n, s in config["versatility"].items()}),
        options=lambda w: as_json({k: v for k, v in LANDSCAPE.items() if k not in ("runs", "seed")}),
        labels=lambda w: as_json({"run": w.run, "task": w.task, "seed": LANDSCAPE_SEED}),
        template=lambda w: PROMPT["template"],  # a lambda: its braces are not wildcards
        max_len=PROMPT["max_len"],
        mask=lambda w: "--mask-prompt" if PROMPT["mask_prompt"] else "--no-mask-prompt",
        model_flags=MODEL_FLAGS,
        stem=lambda w, output: output.plot[: -len(".png")],
    log:
        f"{LOGS}/landscape/{{task}}/{{run}}.log",
    benchmark:
        f"{BENCH}/landscape/{{task}}/{{run}}.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: config["threads"]["evaluate"]
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m cofi landscape --model {input.model:q} --task-data {input.task_data:q} "
        "--vers-suites {params.suites:q} --options {params.options:q} --labels {params.labels:q} "
        "--template {params.template:q} --max-len {params.max_len} {params.mask} {params.model_flags} "
        "--threads {threads} --out {output.json:q} --plot {params.stem:q} > {log:q} 2>&1"


rule sharpness_table:
    input:
        landscapes=expand(f"{RESULTS}/landscape/{{task}}/{{run}}.json", task=config["tasks"], run=LANDSCAPE["runs"]),
        scores=landscape_scores(),
    output:
        csv=report(f"{TABLES}/sharpness.csv", caption="../workflow/report/sharpness.rst", category="Landscapes"),
        md=f"{TABLES}/sharpness.md",
        correlation=report(f"{TABLES}/sharpness_correlation.csv", caption="../workflow/report/sharpness.rst", category="Landscapes"),
        curves=expand(f"{PLOTS}/landscape_{{task}}.{{ext}}", task=config["tasks"], ext=("png", "pdf")),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        plot_dir=lambda w, output: os.path.dirname(output.curves[0]),
    log:
        f"{LOGS}/sharpness_table.log",
    benchmark:
        f"{BENCH}/sharpness_table/sharpness_table.tsv"
    conda:
        "../envs/cofi.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cofi sharpness {input:q} --out-dir {params.out_dir:q} --plot-dir {params.plot_dir:q} > {log:q} 2>&1"
