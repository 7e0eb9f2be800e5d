"""The conda environments the rules name (`--sdm conda`) pin what pyproject.toml pins."""

import tomllib

import yaml

from conftest import REPO



def test_conda_environments_pin_the_packages_pyproject_pins():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    # Jobs run `python -m cofi`, which never imports Snakemake: the orchestrator stays out of rule envs.
    pins = {p for p in pyproject["project"]["dependencies"] if not p.startswith("snakemake")}
    python = pyproject["project"]["requires-python"]
    for path in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        packages = {p for p in pip if not p.startswith("-e")}
        assert packages == pins, f"{path.name}: {sorted(packages ^ pins)} differ from pyproject.toml"
        assert any(d.startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str)), path.name
        assert python == ">=3.11"


def test_every_rule_names_an_environment_that_exists():
    for rules in sorted((REPO / "rules").glob("*.smk")):
        for line in rules.read_text().splitlines():
            if line.strip().startswith('"../envs/'):
                assert (REPO / "rules" / line.strip().strip('"')).resolve().is_file(), f"{rules.name}: {line.strip()}"
