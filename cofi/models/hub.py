"""A model named by its Hugging Face hub id (``model.path: Qwen/Qwen2.5-7B-Instruct@<revision>``): the snapshot in
the local hub cache, and the one job that may go online to fetch it (``python -m cofi fetch-model``), which links
its files into the experiment's model folder with the commit they came from.

Only safetensors weights, configs and tokenizer files are fetched: never pickled weights, never Python code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from cofi.errors import InputError

# owner/name, as the hub spells repositories, then an optional @revision (a branch, tag or commit).
MODEL_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?")
FILES = ["*.safetensors", "*.safetensors.index.json", "*.json", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja"]
RECORD = "cofi_fetch.json"  # written beside the fetched files: repo, revision asked for, commit


class HubError(InputError):
    """A hub id that is not cached, not fetchable, or not what an experiment's folder holds."""


def parse_model_id(text: str) -> tuple[str, str] | None:
    """(repo, revision) of ``owner/name[@revision]`` that is not an existing directory (revision ``main`` where none
    is given); None for anything else (a local path)."""
    match = MODEL_ID.fullmatch(text)
    if match is None or Path(text).exists():
        return None
    return match["repo"], match["revision"] or "main"


def cached_snapshot(repo: str, revision: str) -> Path | None:
    """The snapshot folder of ``repo`` at ``revision`` in the local hub cache (``HF_HOME``), without going online;
    None where it is not there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=FILES, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def fetch_command(repo: str, revision: str) -> str:
    return f"python -m cofi fetch-model --repo {repo} --revision {revision}"


def fetched_record(folder: str | Path) -> dict | None:
    path = Path(folder, RECORD)
    return json.loads(path.read_text()) if path.is_file() else None


def model_source(repo: str, revision: str, folder: str | Path) -> Path:
    """Where the start-up check reads the model: the experiment's fetched folder (which must hold this repo at this
    revision), else the cached snapshot; a snapshot in neither is an error that says how to fetch it."""
    record = fetched_record(folder)
    if record is not None:
        if (record["repo"], record["revision"]) != (repo, revision):
            raise HubError(f"model.path {repo}@{revision}: {folder} holds {record['repo']}@{record['revision']} "
                           f"(commit {record['commit']}); move that folder away to fetch another model")
        return Path(folder)
    snapshot = cached_snapshot(repo, revision)
    if snapshot is None:
        raise HubError(f"model.path {repo}@{revision}: not in the local Hugging Face cache ({hub_cache()}), and jobs "
                       f"run offline; fetch it once on a machine that is online, into the cache the jobs read: "
                       f"{fetch_command(repo, revision)}")
    return snapshot


def hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def fetch(repo: str, revision: str, out: str | Path | None, log=print) -> Path:
    """The snapshot of ``repo`` at ``revision`` in the hub cache (downloaded where this process may go online), then,
    with ``out``, its files linked (or copied, across file systems) into ``out`` with :data:`RECORD`. Returns the
    folder written (or the snapshot)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo, revision=revision, allow_patterns=FILES))
    except Exception as error:  # the hub's errors: not found, gated, offline without the files
        raise HubError(f"{repo}@{revision}: cannot fetch the snapshot ({type(error).__name__}: {error})") from None
    files = sorted(p for p in snapshot.rglob("*") if p.is_file())
    if not any(p.suffix == ".safetensors" for p in files):
        raise HubError(f"{repo}@{revision}: the snapshot has no .safetensors weights (cofi loads no pickled weights)")
    commit = snapshot.name  # the hub cache names each snapshot folder by its commit
    log(f"{repo}@{revision}: commit {commit}, {len(files)} files in {snapshot}")
    if out is None:
        return snapshot
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise HubError(f"{out}: exists and is not empty; move it away to fetch into it")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for source in files:
        target = partial / source.relative_to(snapshot)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source.resolve(), target)  # the cache's blob: no second copy of the weights
        except OSError:
            shutil.copy2(source.resolve(), target)
    (partial / RECORD).write_text(json.dumps({"repo": repo, "revision": revision, "commit": commit,
                                              "files": [str(p.relative_to(snapshot)) for p in files]}, indent=1) + "\n")
    if out.exists():
        out.rmdir()
    partial.rename(out)  # whole or not at all: a killed fetch leaves no half folder for the workflow to trust
    log(f"linked into {out}")
    return out
