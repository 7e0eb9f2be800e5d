"""The docs stay true: the generated references are current, every relative link resolves, the front page's
default table matches the default's table when one is there, and the site builds offline."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, skip_or_fail

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """The heading anchors a Markdown renderer gives this text (GitHub's and MkDocs' rule for plain headings:
    lower case, punctuation but hyphens and underscores dropped, spaces to hyphens)."""
    found = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not (match := re.match(r"#{1,6} (.+)", line)):
            continue
        text = re.sub(r"[`*]", "", match[1]).strip().lower()
        found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text)))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_the_generated_references_are_current():
    """docs/reference/ is what `python -m cofi.devtools docs` writes from today's schema and registry."""
    from cofi.devtools.reference import REFERENCE_DIR, references

    for name, text in references().items():
        path = REPO / REFERENCE_DIR / name
        assert path.exists() and path.read_text() == text, f"{path} is stale: run python -m cofi.devtools docs"


def test_every_config_key_and_method_key_is_described():
    from cofi.methods import METHODS
    from cofi.devtools.reference import config_rows
    from cofi.config.schema import load_schema

    keys = {key for key, *_ in config_rows(load_schema())}  # raises on a key without a description
    assert {"training.lr", "search.lr", "runs.<run>.sam", "tasks.<task>.metric", "claims.cofitune"} <= keys
    assert all(spec.get("description") for method in METHODS.values() for spec in method.keys.values())


# Where a reader meets the project's words: the pages, and the files whose comments they read.
READ_BY_USERS = [*PAGES, REPO / "config.yaml", *sorted((REPO / "configs").rglob("*.yaml")), REPO / "Makefile",
                 *sorted((REPO / "workflow").rglob("*.yaml")), *sorted((REPO / "workflow").rglob("*.rst"))]
HISTORY = re.compile(r"\bissues? #?\d+|\bthe brief\b|\bdevice tool\b|\bthis session\b|\blent to\b", re.I)
FILE_SUFFIXES = (".md", ".csv", ".tex", ".json", ".jsonl", ".yaml", ".yml", ".png", ".pdf", ".html", ".py", ".tsv",
                 ".safetensors", ".log", ".txt", ".gguf", ".smk")


def config_keys_named(text: str, top_level: set[str]) -> set[str]:
    """The dotted names in backticks whose first part is a top-level config key (file names excepted)."""
    names = set(re.findall(r"`([a-z_]+(?:\.[A-Za-z0-9_<>-]+)+)(?:: [^`]*)?`", text))
    return {n for n in names if n.split(".")[0] in top_level and not n.endswith(FILE_SUFFIXES)}


def known_config_key(name: str, keys: set[str], method_keys: set[str]) -> bool:
    """``name`` is a schema key; a <task>, <run> or other <...> part takes any name; a run takes its method's keys."""
    for key in keys:
        if re.fullmatch(re.sub(r"<[^>]+>", "[^.]+", re.escape(key).replace(r"\<", "<").replace(r"\>", ">")), name):
            return True
    parts = name.split(".")
    return parts[0] == "runs" and len(parts) >= 3 and parts[2] in method_keys


@pytest.mark.parametrize("page", READ_BY_USERS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_key_a_page_names_exists(page):
    from cofi.methods import METHODS
    from cofi.devtools.reference import config_rows
    from cofi.config.schema import load_schema

    schema = load_schema()
    keys = {key for key, *_ in config_rows(schema)}
    method_keys = {key for method in METHODS.values() for key in method.keys}
    named = config_keys_named(page.read_text(), set(schema["properties"]))
    unknown = sorted(n for n in named if not known_config_key(n, keys, method_keys))
    assert not unknown, f"{page.relative_to(REPO)} names config keys the schema does not have: {unknown}"


def test_the_key_check_finds_a_key_that_does_not_exist():
    from cofi.devtools.reference import config_rows
    from cofi.config.schema import load_schema

    schema = load_schema()
    keys = {key for key, *_ in config_rows(schema)}
    named = config_keys_named("set `embedded.base.seeds`, `tasks.law.metric`, `runs.l2.lambda` and read `claims.md`",
                              set(schema["properties"]))
    assert named == {"embedded.base.seeds", "tasks.law.metric", "runs.l2.lambda"}
    assert [n for n in sorted(named) if not known_config_key(n, keys, {"lambda"})] == ["embedded.base.seeds"]


@pytest.mark.parametrize("page", READ_BY_USERS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_speaks_of_the_projects_history_instead_of_the_project(page):
    """A reader can follow a commit, a command or a page; not an issue number or how the work was organised."""
    found = [match[0] for match in HISTORY.finditer(page.read_text())]
    assert not found, f"{page.relative_to(REPO)}: {found}"


def test_a_key_without_a_description_is_an_error():
    from cofi.devtools.reference import ReferenceError, config_rows

    schema = {"type": "object", "properties": {"a": {"type": "object", "description": "A.",
                                                     "properties": {"b": {"type": "integer", "default": 1}}}}}
    with pytest.raises(ReferenceError, match="key a.b has no description"):
        config_rows(schema)


def test_the_config_reference_shows_types_defaults_and_bounds():
    from cofi.devtools.reference import config_reference

    schema = {"definitions": {"n": {"type": "integer", "minimum": 1}},
              "type": "object", "properties": {
                  "s": {"type": "object", "default": {}, "description": "S.", "properties": {
                      "k": {"$ref": "#/definitions/n", "default": 3, "description": "k <things> | more"},
                      "e": {"enum": ["a", "b"], "default": "a", "description": "E."}}}}}
    text = config_reference(schema)
    assert "| `s.k` | integer | `3` | ≥ 1 | k &lt;things&gt; \\| more |" in text
    assert '| `s.e` | `"a"` \\| `"b"` | `"a"` | – | E. |' in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    """Files exist and #anchors name a heading of their page."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n")
    page.write_text("[ok](other.md#a-section) [gone](missing.md) [bad](other.md#nothing) `[code](x.md)`\n")
    assert links(page) == ["other.md#a-section", "missing.md", "other.md#nothing"]
    assert anchors((tmp_path / "other.md").read_text()) == {"other", "a-section"}


def markdown_table(text: str) -> dict[str, dict[str, str]]:
    """The first pipe table of ``text`` as {first cell: {column: cell}}, bold marks dropped."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    cells = [[c.strip().replace("**", "") for c in line.strip().strip("|").split("|")] for line in rows]
    head, body = cells[0], cells[2:]
    return {row[0]: dict(zip(head, row)) for row in body}


COMMITTED_MAIN = REPO / "docs/results/default-main.md"  # results/default/tables/main.md as the default writes it


@pytest.mark.parametrize("page", ["README.md", "docs/default-experiment.md"])
def test_the_default_tables_quoted_in_the_docs_are_the_committed_main_table(page):
    """Every cell a page quotes from the default's main table is the cell of the committed copy (checked in CI too)."""
    text = (REPO / page).read_text()
    quoted = markdown_table(text[text.index("| method |"):])
    assert {"base", "full"} <= set(quoted), f"{page}: no default table"
    measured = markdown_table(COMMITTED_MAIN.read_text())
    differ = [f"{row} / {column}: {page} {value!r}, committed main.md {measured.get(row, {}).get(column)!r}"
              for row, cells in quoted.items() for column, value in cells.items()
              if column != "method" and measured.get(row, {}).get(column) != value]
    assert not differ, f"{page}'s default table is out of date: " + "; ".join(differ)


def test_the_committed_main_table_is_what_the_default_wrote_here():
    """Where the default has run here (results/ is not in the repository), its main table is the committed copy
    byte for byte: a change to the default's numbers updates docs/results/default-main.md and the pages quoting it."""
    main = REPO / "results/default/tables/main.md"
    if not main.exists():  # a clean clone (CI): the test above has checked the pages against the copy
        return
    assert main.read_text() == COMMITTED_MAIN.read_text(), "run: cp results/default/tables/main.md docs/results/"


def test_the_site_builds_offline(tmp_path):
    """`make docs`'s build: MkDocs in strict mode (a broken link or nav entry fails it)."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        skip_or_fail("mkdocs is not installed (pip install -e '.[docs]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site/index.html").exists() and (tmp_path / "site/reference/configuration/index.html").exists()
