"""The GPU validation script in its CPU smoke mode: every step runs through cofi's jobs with tiny shapes, so the script
that waits for a GPU cannot rot. The figures are not checked against targets (that is the GPU run's job), only that
each step ran and measured what it says."""

import json
import math
import subprocess
import sys

from conftest import REPO


def test_every_step_of_the_gpu_validation_runs_in_smoke_mode(tmp_path):
    out, summary = tmp_path / "result.json", tmp_path / "summary.md"
    done = subprocess.run([sys.executable, "-m", "cofi.devtools", "gpu-validate", "--smoke", "--work-dir",
                           str(tmp_path / "work"), "--out", str(out), "--summary", str(summary)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    result = json.loads(out.read_text())
    steps = result["steps"]
    failed = {name: step.get("error", "") + step.get("detail", "") for name, step in steps.items() if step["status"] != "ok"}
    assert done.returncode == 0 and not failed, (failed, done.stderr[-3000:])
    assert list(steps) == ["environment", "models", "finetune", "fsdp", "checkpoint", "methods", "loss", "generation",
                           "landscape", "backends"]
    assert steps["finetune"]["tokens_per_s"] > 0 and math.isfinite(steps["finetune"]["last_loss"])
    assert steps["checkpoint"]["tensors_differing"] == [] and steps["checkpoint"]["logits_equal"]
    methods = steps["methods"]
    assert {"region_softmask", "sam", "l2", "lora"} <= set(methods)
    assert methods["sam"]["step_time_over_full"] > 1  # two passes per step
    assert all(methods[name]["planned_gib"] > 0 for name in ("full", "region_softmask", "sam", "l2", "lora"))
    assert steps["generation"]["new_tokens"] == 2 * 4
    assert "| landscape | ok |" in summary.read_text()
    backends = steps["backends"]
    assert backends["hf_job_s"] > 0 and 0 <= backends["hf_scores"]["gen"] <= 100
    assert backends["vllm"] == "not run: no GPU (smoke mode)"
