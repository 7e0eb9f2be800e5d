"""Peak bytes of two sharded training steps of each of several runs, measured by torch's memory tracker (run under
torchrun, gloo on CPU): what tests/models/test_plan.py checks `cofi plan` against. Takes a JSON list of run specs; prints
one JSON line per run on process 0."""

import json
import sys

import torch
import torch.distributed as dist
from torch.distributed._tools.mem_tracker import MemTracker

from cofi.training import distributed, sharding
from cofi.config.runs import Run
from cofi.methods import METHODS, Inputs
from cofi.models.loading import build_llama
from cofi.training.sam import SAM
from cofi.config.settings import ComputeSettings, TrainSettings
from cofi.training.loop import Trainer


class StepPeak(MemTracker):
    """torch's MemTracker, for steps that run the model several times (accumulation, SAM): each new call of the
    root module starts the per-module statistics again; the storage bytes, and so the peak, are tracked throughout."""

    def _pre_fw_hook(self, module, inputs):
        name = self._mod_tracker.get_known_fqn(module)
        if module in self.memory_tracking and not self._mod_tracker.is_bw and \
                set(self._mod_tracker.parents) - {name} == {"Global"}:
            self.reset_mod_stats()
        super()._pre_fw_hook(module, inputs)

    def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
        # Its gradient hooks fail on frozen parameters (LoRA's base): a module holding any is tracked without them;
        # the gradients' storage still counts toward the peak, under another category.
        frozen = any(not p.requires_grad for p in module.parameters())
        return super()._track_module_params_and_buffers(module, install_grad_hooks and not frozen)


def measure(spec: dict) -> dict:
    torch.manual_seed(0)
    arch, tokens = spec["arch"], spec["max_len"]
    model = build_llama(arch["vocab"], {**arch, "max_len": tokens}, seed=0).train()
    params = dict(spec.get("params", {}))
    run = Run(name=spec["method"], method=spec["method"], train=TrainSettings(**spec["train"]),
              sam_rho=params.pop("sam_rho", None), params=params)
    setup = METHODS[run.method].setup(model, run, Inputs(seed=0, tokenize=None, load_model=None))
    trained = setup.model
    sharding.shard_model(trained, distributed.mesh(torch.device("cpu")), "fp32")
    extensions = [*setup.extensions, *([SAM(run.sam_rho)] if run.sam_rho else [])]
    trainer = Trainer(trained, run.train, 0, ComputeSettings(), extensions)
    generator = torch.Generator().manual_seed(1)
    rows = run.train.batch_size
    batches = [{"input_ids": (ids := torch.randint(4, arch["vocab"], (rows, tokens), generator=generator)),
                "attention_mask": torch.ones_like(ids), "labels": ids.clone()} for _ in range(run.train.grad_accum)]
    tracker = StepPeak()
    kept = [start for e in extensions for _, start in (getattr(e, "pairs", None) or [])]  # L1/L2's start, made at attach
    tracker.track_external(trained, trainer.optimizer, *[b["input_ids"] for b in batches], *kept)
    with tracker:
        for _ in range(2):
            trainer.step(batches)
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
    return {"peak": peak["Total"], **{str(k.value): v for k, v in peak.items() if k != "Total"}}


if __name__ == "__main__":
    dist.init_process_group("gloo")
    for spec in json.loads(sys.argv[1]):
        measured = measure(spec)
        if dist.get_rank() == 0:
            print(json.dumps(measured), flush=True)
    dist.destroy_process_group()
