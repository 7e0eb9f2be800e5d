"""File side of the coarse search: one depth file per checkpoint, then the trace, table and tree figure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cofi.io import write_json
from cofi.jobs.interface import Job, option
from cofi.search.regions import parse_region_id
from cofi.search.policy import Policy, best_node, best_variant, first_candidates, step

TRACE_COLUMNS = ["depth", "id", "parent", "label", "layers", "modules", "lr", "run", "spec", "vers", "uni", "value", "status",
                 "reason"]


@dataclass(frozen=True, kw_only=True)
class SearchStepJob(Job):
    """One depth of the coarse search: score, select, expand."""

    task: str = option("speciality task")
    depth: int = option("depth of this step (0 seeds the search)")
    policy: Policy = option("the search policy (search)")
    n_layers: int = option("decoder layers of the model")
    split: str = option("split the scores come from (recorded in the trace)", "val")
    reference: str = option("score file of the reference run (Full SFT)")
    reference_run: dict | None = option('{"run", "lr"} of the reference (the trace)', None)
    previous: str | None = option("the previous depth's file (depth >= 1)", None)
    candidates: dict = option('{candidate id: [{"lr", "run", "scores": score file}, ...]} of this depth, one per lr', {})
    out: str = option("this depth's JSON file")

    def execute(self) -> dict:
        payload = search_step(self.task, self.depth, self.policy, self.n_layers, self.reference, self.split,
                              self.previous, self.candidates, self.out, reference_run=self.reference_run)
        for node in payload["nodes"]:
            self.log(f"depth {self.depth} {node['id']} (lr {node.get('lr')}): Spec {node['spec']:.1f} Vers "
                     f"{node['vers']:.1f} Uni {node['uni']:.1f} - {node['status']}: {node['reason']}")
        self.log(f"next depth: {', '.join(c['id'] for c in payload['expand']) or 'nothing (search ends)'}")
        return payload


@dataclass(frozen=True, kw_only=True)
class SearchReportJob(Job):
    """Trace, table and tree figure of a finished search."""

    task: str = option("speciality task")
    depth_files: tuple[str, ...] = option("depth JSON files in order")
    n_layers: int = option("decoder layers of the model")
    out_dir: str = option("directory for result.json, trace.csv, table.md, tree.png/pdf")

    def execute(self) -> dict:
        result = search_report(self.task, list(self.depth_files), self.n_layers, self.out_dir)
        self.log(f"{self.task}: selected {result['label']} ({result['selected']}) after training "
                 f"{len(result['trained'])} candidates")
        return result


@dataclass(frozen=True, kw_only=True)
class MatrixSnrJob(Job):
    """Spectrum's signal-to-noise ratio of every decoder-layer projection matrix of a model, read tensor by tensor
    from its weight files (no model is built)."""

    computes: ClassVar[bool] = True  # singular values: threads help
    model: str = option("the model directory")
    device: str = option("where the singular values are computed (compute.device; auto: a GPU if one is visible): a "
                         "7B model's 224 matrices take hours on one CPU thread (92 s for one 4096 x 11008 matrix)",
                         "auto")
    out: str = option("output CSV: layer, projection, shape, SNR and what it rests on")

    @classmethod
    def device_of(cls, values: dict) -> str:
        return str(values.get("device", "auto"))

    def execute(self) -> None:
        import pandas as pd

        from cofi.models.loading import resolve_device
        from cofi.models.weights import stored_weights
        from cofi.search.regions import layer_projection
        from cofi.search.snr import matrix_snr

        device, rows = resolve_device(self.device), []
        with stored_weights(self.model) as weights:
            for name in weights.names():
                found = layer_projection(name)
                if found is None or not name.endswith(".weight") or len(weights.shape_and_dtype(name)[0]) != 2:
                    continue
                tensor = weights.tensor(name)
                rows.append({"layer": found[0], "projection": found[1], "name": name,
                             "shape": "x".join(map(str, tensor.shape)), **matrix_snr(tensor.to(device))})
        if not rows:
            raise ValueError(f"{self.model}: no decoder-layer projection matrices (names like model.layers.0.mlp.up_proj.weight)")
        frame = pd.DataFrame(rows).sort_values(["layer", "projection"])
        Path(self.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.out, index=False, float_format="%.6g")
        self.log(f"SNR of {len(frame)} matrices in {frame['layer'].nunique()} layers -> {self.out}")


@dataclass(frozen=True, kw_only=True)
class SearchSnrJob(Job):
    """The search's pick by signal-to-noise ratio (search.mode: snr): the grid's regions ranked by their matrices'
    SNR, no candidate trained; the result, trace, table and a ranking figure where the tree's go."""

    task: str = option("speciality task (each task's result holds the same pick: the SNR is the base model's)")
    snr: str = option("the matrices' SNR (the matrix-snr job's CSV)")
    policy: Policy = option("the search policy (search): its root_modules and min_layers")
    groups: dict = option("module groups: {group: [projection, ...]} (module_groups)")
    n_layers: int = option("decoder layers of the model")
    runs: dict = option("{region id: the run that trains it at lr} for every candidate")
    lr: float = option("the lr the pick trains at (the reference run's)")
    out_dir: str = option("directory for result.json, trace.csv, table.md, tree.png/pdf")

    def execute(self) -> dict:
        result = snr_report(self.task, self.snr, self.policy, self.groups, self.n_layers, self.runs, self.lr,
                            self.out_dir)
        self.log(f"{self.task}: selected {result['label']} ({result['selected']}), mean SNR percentile "
                 f"{result['nodes'][0]['value']:.3f} of {len(result['nodes'])} regions; nothing trained")
        return result


def snr_report(task: str, snr_file: str, policy: Policy, groups: dict, n_layers: int, runs: dict, lr: float,
               out_dir: str | Path) -> dict:
    """The grid's regions ranked by their matrices' SNR (``snr_file``), written as a search's result (the pick, its
    run at ``lr``, no trainings), trace, table and a ranking figure; returns the result."""
    import pandas as pd

    from cofi.search.policy import first_candidates
    from cofi.search.snr import rank_regions

    frame = pd.read_csv(snr_file)
    snr = {(int(r.layer), str(r.projection)): float(r.snr) for r in frame.itertuples()}
    ranked = rank_regions([c["region"] for c in first_candidates(policy, n_layers)], snr, groups, n_layers)
    pick = ranked[0]
    nodes = [{**row, "selected": row is pick, "status": "selected" if row is pick else "ranked"} for row in ranked]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trace = pd.DataFrame(nodes).assign(layers=lambda t: t["layers"].map(lambda ls: " ".join(map(str, ls))),
                                       modules=lambda t: t["modules"].map("+".join))
    trace[SNR_TRACE_COLUMNS].to_csv(out_dir / "trace.csv", index=False, float_format="%.4f")
    table = trace[["rank", "label", "matrices", "value", "snr"]].rename(
        columns={"value": "mean SNR percentile", "snr": "mean SNR"})
    (out_dir / "table.md").write_text(
        f"Signal-to-noise pick for {task} ({len(table)} regions of the base model ranked by their matrices' mean "
        f"SNR percentile within each projection; nothing trained)\n\n" + table.to_markdown(index=False, floatfmt=".3f")
        + "\n")
    plot_ranking(nodes, task, out_dir / "tree")
    result = {"task": task, "selected": pick["id"], "run": runs[pick["id"]], "lr": lr, "label": pick["label"],
              "scores": None, "selection_split": None, "criterion": "snr", "trained": [], "runs": [], "nodes": nodes}
    write_json(out_dir / "result.json", result, indent=1)
    return result


SNR_TRACE_COLUMNS = ["rank", "id", "label", "layers", "modules", "matrices", "value", "snr", "selected"]


def plot_ranking(nodes: list[dict], task: str, stem: Path) -> None:
    """The regions' mean SNR percentile, best at the top; the pick in red."""
    from cofi.io import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(nodes) + 1.2))
    ys = range(len(nodes))[::-1]
    ax.barh(list(ys), [n["value"] for n in nodes], color=["tab:red" if n["selected"] else "0.6" for n in nodes])
    ax.set_yticks(list(ys), [n["label"] for n in nodes], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean SNR percentile of the region's matrices (within each projection)")
    ax.set_title(f"Signal-to-noise pick for {task} (pick in red; nothing trained)")
    fig.tight_layout()
    save_figure(fig, stem)


def task_scores(path: str | Path, task: str) -> dict:
    """Spec, Vers and Uni of one task from a score file."""
    with open(path) as handle:
        scores = json.load(handle)
    return {"spec": scores["spec"][task], "vers": scores["vers"], "uni": scores["uni"][task]}


def _serialisable(node: dict) -> dict:
    return {k: v for k, v in node.items() if k != "region"}


def write_depth(out: str | Path, payload: dict) -> None:
    payload = {**payload, "nodes": [_serialisable(n) for n in payload["nodes"]],
               "expand": [{"id": c["id"], "parent": c["parent"]} for c in payload["expand"]]}
    write_json(out, payload, indent=1)


def search_step(task: str, depth: int, policy: Policy, n_layers: int, reference: str, split: str,
                previous: str | None, candidate_scores: dict[str, list[dict]], out: str,
                reference_run: dict | None = None) -> dict:
    """Depth 0 seeds the search from the reference run; depth d ≥ 1 scores the candidates of d.

    ``candidate_scores``: {candidate id: [{"lr", "run", "scores": its score file}, ...]}, one entry per
    learning rate it trained at; a candidate scores as its best (:func:`cofi.search.policy.best_variant`), whose
    lr and run its node records. ``reference_run``: the reference's {"run", "lr"}, recorded on the root."""
    ref = task_scores(reference, task)
    ref_value = ref[policy.criterion]
    if depth == 0:
        root = {"id": "root", "parent": None, "depth": 0, "label": "Full SFT (reference)", "layers": list(range(n_layers)),
                "modules": ["all"], **(reference_run or {}), **ref, "value": ref_value, "status": "expanded",
                "reason": "reference run"}
        payload = {"nodes": [root], "expand": first_candidates(policy, n_layers)}
    else:
        with open(previous) as handle:
            prev = json.load(handle)
        candidates = [{**c, "region": parse_region_id(c["id"])} for c in prev["expand"]]
        parent_values = {n["id"]: n["value"] for n in prev["nodes"]} | {"root": ref_value}
        scores, chosen = {}, {}
        for cid, variants in candidate_scores.items():
            by_lr = {v["lr"]: {**task_scores(v["scores"], task), "run": v["run"], "score_file": v["scores"]}
                     for v in variants}
            lr = best_variant(by_lr, policy, ref["spec"])
            variants_by_lr = {format(k, "g"): {m: v[m] for m in ("run", "spec", "vers", "uni")} for k, v in by_lr.items()}
            scores[cid], chosen[cid] = by_lr[lr], {"lr": lr, "run": by_lr[lr]["run"], "variants": variants_by_lr,
                                                   "score_file": by_lr[lr]["score_file"]}
        result = step(depth, candidates, scores, parent_values, ref["spec"], policy, n_layers)
        payload = {"nodes": [{**n, **chosen[n["id"]]} for n in result.nodes], "expand": result.expand}
    payload = {"task": task, "depth": depth, "selection_split": split, "criterion": policy.criterion,
               "reference_spec": ref["spec"], **payload}
    write_depth(out, payload)
    return payload


def search_report(task: str, depth_files: list[str], n_layers: int, out_dir: str | Path) -> dict:
    """Trace (JSON, CSV), a Markdown table and the tree figure; returns the result with the pick."""
    import pandas as pd

    nodes = []
    for path in depth_files:
        with open(path) as handle:
            nodes += json.load(handle)["nodes"]
    with open(depth_files[0]) as handle:
        first = json.load(handle)
    split, criterion = first["selection_split"], first.get("criterion", "uni")
    pick = best_node(nodes, n_layers)
    if pick is None:
        raise ValueError(f"search for {task!r}: no candidate reached the Spec floor; lower search.spec_floor")
    path_ids = _path_to(pick["id"], nodes)
    for n in nodes:
        n["on_path"] = n["id"] in path_ids
        n["selected"] = n["id"] == pick["id"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trace = pd.DataFrame(nodes)
    trace["layers"] = trace["layers"].map(lambda ls: " ".join(str(i) for i in ls))
    trace["modules"] = trace["modules"].map("+".join)
    lr_text = trace["lr"].map(lambda lr: "" if pd.isna(lr) else format(lr, "g"))  # not rounded as the scores are
    trace.assign(lr=lr_text)[TRACE_COLUMNS + ["on_path", "selected"]].to_csv(out_dir / "trace.csv", index=False,
                                                                           float_format="%.2f")
    table = trace[trace["id"] != "root"][["depth", "label", "lr", "spec", "vers", "uni", "status", "reason"]]
    table = table.round({"spec": 1, "vers": 1, "uni": 1}).assign(lr=lr_text)
    trainings = sum(len(n.get("variants", {})) for n in nodes)
    (out_dir / "table.md").write_text(
        f"Search for {task} (scores on the {split} split; {len(table)} candidates, {trainings} trainings)\n\n"
        + table.to_markdown(index=False) + "\n")
    plot_tree(nodes, task, out_dir / "tree")
    result = {"task": task, "selected": pick["id"], "run": pick["run"], "lr": pick["lr"], "label": pick["label"],
              "scores": {k: pick[k] for k in ("spec", "vers", "uni")}, "selection_split": split, "criterion": criterion,
              "trained": [n["id"] for n in nodes if n["id"] != "root"],
              "runs": [v["run"] for n in nodes if n["id"] != "root" for v in n["variants"].values()], "nodes": nodes}
    write_json(out_dir / "result.json", result, indent=1)
    return result


def _path_to(node_id: str, nodes: list[dict]) -> set[str]:
    parents = {n["id"]: n["parent"] for n in nodes}
    path = set()
    while node_id is not None:
        path.add(node_id)
        node_id = parents.get(node_id)
    return path


def plot_tree(nodes: list[dict], task: str, stem: Path) -> None:
    """The explored tree like the paper's exploration figure; the chosen path in red."""
    from cofi.io import pyplot, save_figure

    plt = pyplot()
    by_depth: dict[int, list[dict]] = {}
    for n in nodes:
        by_depth.setdefault(n["depth"], []).append(n)
    width = max(len(v) for v in by_depth.values())
    position = {}
    for depth, row in by_depth.items():
        for i, n in enumerate(row):
            position[n["id"]] = ((i + 0.5) * width / len(row), -depth)
    fig, ax = plt.subplots(figsize=(max(6, 2.6 * width), 1.8 * len(by_depth) + 0.5))
    for n in nodes:
        if n["parent"] in position:
            (x0, y0), (x1, y1) = position[n["parent"]], position[n["id"]]
            ax.plot([x0, x1], [y0, y1], color="tab:red" if n["on_path"] else "0.7", lw=2.2 if n["on_path"] else 1, zorder=1)
    for n in nodes:
        x, y = position[n["id"]]
        text = f"{n['label']}\nSpec {n['spec']:.1f} Vers {n['vers']:.1f}\nUni {n['uni']:.1f}"
        if len(n.get("variants", {})) > 1:  # trained at several learning rates: the one it scores as
            text += f" (lr {n['lr']:g})"
        edge = "tab:red" if n["on_path"] else ("0.6" if n["status"] == "pruned" else "tab:blue")
        ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=2,
                bbox={"boxstyle": "round", "fc": "mistyrose" if n["selected"] else "white", "ec": edge, "lw": 2 if n["on_path"] else 1})
    ax.set_xlim(0, width)
    ax.set_ylim(-len(by_depth) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(f"Coarse search for {task}: explored regions (chosen path in red)")
    fig.tight_layout()
    save_figure(fig, stem)
