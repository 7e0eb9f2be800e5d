"""What is installed: pyproject.toml's ranges, the locked set within them, the rules' conda environments."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO



def locked() -> dict[str, str]:
    """{package: version} of requirements.lock (names normalised as pip compares them)."""
    pins = [line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines()
            if line and not line.startswith(("#", " "))]
    return {canonicalize_name(name): version for name, version in pins}


def test_the_locked_set_lies_within_the_ranges_pyproject_declares():
    """requirements.lock (what make setup installs and CI tests) pins every dependency and extra make setup takes,
    each within pyproject.toml's range; the ranges are ranges, so cofi installs beside another stack."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lock = locked()
    wanted = [*pyproject["project"]["dependencies"],
              *(req for extra in ("test", "docs", "slurm", "tensorboard")
                for req in pyproject["project"]["optional-dependencies"][extra])]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "torch":  # installed first, pinned in the Makefile (a CPU or CUDA build of one release)
            torch_pin = re.search(r"^TORCH := torch==(\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
            assert requirement.specifier.contains(torch_pin), (text, torch_pin)
            assert "torch" not in lock
            continue
        assert name in lock, f"requirements.lock has no {name}"
        assert requirement.specifier.contains(lock[name], prereleases=True), f"{name}=={lock[name]} is outside {text}"
    exact = [text for text in pyproject["project"]["dependencies"] if "==" in text]
    assert not exact, f"exact pins in pyproject.toml: {exact} (pin them in requirements.lock)"


def test_conda_environments_install_the_locked_set():
    """The rules' conda environments take torch as make setup does, then requirements.lock, then cofi."""
    torch_pin = re.search(r"^TORCH := (\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    for path in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        assert pip == [torch_pin, "-r ../requirements.lock", "-e .."], path.name
        assert any(d.startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str)), path.name
        assert python == ">=3.11"


def test_every_rule_names_an_environment_that_exists():
    for rules in sorted((REPO / "rules").glob("*.smk")):
        for line in rules.read_text().splitlines():
            if line.strip().startswith('"../envs/'):
                assert (REPO / "rules" / line.strip().strip('"')).resolve().is_file(), f"{rules.name}: {line.strip()}"
