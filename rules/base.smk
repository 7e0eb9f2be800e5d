# The base model where the config names no directory: a GGUF file's import (model.gguf), a hub id's fetch
# (model.path: owner/name[@revision]), or the embedded one (tokenizer + small Llama "aligned" on the versatility
# mixture). One rule makes it.


if EXP.model.gguf is not None:

    rule import_gguf:
        input:
            EXP.model.gguf,
        output:
            directory(LAYOUT.base_model),
        params:
            spec=lambda w: job_spec("import-gguf", gguf=EXP.model.gguf, out=LAYOUT.base_model, dtype=EXP.model.dtype),
        log:
            log_file("import_gguf", "import_gguf"),
        benchmark:
            benchmark_file("import_gguf", "import_gguf")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads.base
        resources:
            mem_mb=8000,
            runtime=60,
        shell:
            job_command("import-gguf")


elif EXP.hub is not None:

    localrules:
        fetch_model,  # links files from the hub cache: never submitted to a cluster


    rule fetch_model:
        """A model named by its hub id: its snapshot linked from the hub cache into the experiment's model folder, with
        the commit it came from (cofi/models/hub.py). The one job that may go online, where the cache lacks it."""
        output:
            directory(LAYOUT.base_model),
        params:
            spec=lambda w: job_spec("fetch-model", repo=EXP.hub[0], revision=EXP.hub[1], out=LAYOUT.base_model),
        log:
            log_file("fetch_model", "fetch_model"),
        benchmark:
            benchmark_file("fetch_model", "fetch_model")
        conda:
            "../envs/cofi.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=120,
        shell:
            job_command("fetch-model")


else:

    rule build_base:
        input:
            LAYOUT.data_file("versatility_train"),
        output:
            directory(LAYOUT.base_model),
        params:
            spec=lambda w: job_spec(
                "build-base", world=config["embedded"]["world"], train=config["embedded"]["base"]["train"],
                seed=config["embedded"]["base"]["seed"], train_data=LAYOUT.data_file("versatility_train"), prompt=PROMPT,
                out=LAYOUT.base_model,
                architecture={k: v for k, v in config["embedded"]["base"].items() if k not in ("seed", "train")}),
        log:
            log_file("build_base", "build_base"),
        benchmark:
            benchmark_file("build_base", "build_base")
        conda:
            "../envs/cofi.yaml"
        threads: EXP.threads.base
        resources:
            mem_mb=4000,
            runtime=60,
            **model_resources(),
        shell:
            job_command("build-base")
