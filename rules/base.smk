# The base model where the config names no directory: a GGUF file's import (model.gguf), or the
# embedded one (tokenizer + small Llama "aligned" on the versatility mixture). One rule makes it.


if EXP.model.gguf is not None:

    rule import_gguf:
        input:
            EXP.model.gguf,
        output:
            directory(LAYOUT.base_model),
        params:
            dtype=EXP.model.dtype,
        log:
            log_file("import_gguf", "import_gguf"),
        benchmark:
            benchmark_file("import_gguf", "import_gguf")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads["base"]
        resources:
            mem_mb=8000,
            runtime=60,
        shell:
            "python -m cofi import-gguf --gguf {input:q} --out {output:q} --dtype {params.dtype} "
            "--threads {threads} > {log:q} 2>&1"


else:

    rule build_base:
        input:
            LAYOUT.data_file("versatility_train"),
        output:
            directory(LAYOUT.base_model),
        params:
            world=lambda w: as_json(config["embedded"]["world"]),
            base=lambda w: as_json(config["embedded"]["base"]),
            prompt=prompt_json,
        log:
            log_file("build_base", "build_base"),
        benchmark:
            benchmark_file("build_base", "build_base")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads["base"]
        resources:
            mem_mb=4000,
            runtime=60,
            **model_resources(),
        shell:
            "python -m cofi build-base --world {params.world:q} --base {params.base:q} --train {input:q} "
            "--prompt {params.prompt:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
