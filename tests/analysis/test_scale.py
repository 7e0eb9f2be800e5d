"""The scale trend (cofi/analysis/scale.py): every method's Uni and Vers drop per model size, and its figure."""

import pandas as pd

from cofi.models.loading import build_llama, save_model
from cofi.analysis.scale import parameter_count, scale_frame, write_scale


def tidy(base_vers: float, rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    records = [{"method": "base", "task": "bio", "spec": 0.0, "vers": base_vers, "uni": base_vers / 2,
                "uni_std": float("nan"), "vers_std": float("nan")}]
    records += [{"method": m, "task": "bio", "spec": s, "vers": v, "uni": (s + v) / 2, "uni_std": 1.0, "vers_std": 2.0}
                for m, (s, v) in rows.items()]
    return pd.DataFrame(records)


def test_the_scale_frame_takes_each_sizes_base_for_the_vers_drop():
    frame = scale_frame({1000: tidy(90.0, {"full": (100.0, 40.0), "l2": (90.0, 70.0)}),
                         4000: tidy(96.0, {"full": (100.0, 60.0), "l2": (95.0, 90.0)})}, methods=["full", "l2"])
    drops = frame.set_index(["params", "method"])["vers_drop"]
    assert drops[(1000, "full")] == 50.0 and drops[(4000, "full")] == 36.0 and drops[(4000, "l2")] == 6.0
    assert set(frame["method"]) == {"full", "l2"} and frame["uni"].notna().all()


def test_write_scale_counts_each_models_parameters_and_draws_the_figure(tmp_path, tokenizer):
    from conftest import TINY_ARCH

    sizes = []
    for width in (16, 32):
        experiment = tmp_path / f"w{width}"
        model = build_llama(len(tokenizer), {**TINY_ARCH, "hidden": width, "intermediate": 2 * width}, seed=0)
        save_model(model, tokenizer, experiment / "base_model")
        (experiment / "tables").mkdir()
        tidy(90.0, {"full": (100.0, 40.0 + width)}).to_csv(experiment / "tables" / "main.csv", index=False)
        sizes.append(sum(p.numel() for p in model.parameters()))
        assert parameter_count(experiment / "base_model") == sizes[-1]
    frame = write_scale([tmp_path / "w16", tmp_path / "w32"], tmp_path / "scale")
    assert sorted(frame["params"]) == sorted(sizes)
    assert (tmp_path / "scale" / "scale.png").stat().st_size > 10_000 and (tmp_path / "scale" / "scale.csv").is_file()
