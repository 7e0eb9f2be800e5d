# Result tables, rebuilt from the score files only.


rule main_table:
    input:
        table_inputs,
    output:
        csv=MAIN_TABLE[0],
        md=MAIN_TABLE[1],
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
        "python -m cofi table {input:q} --csv {output.csv:q} "
        "--md {output.md:q} > {log:q} 2>&1"
