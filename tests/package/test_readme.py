"""What the README and docs/ show must work.

Every TOML block passes `q2pconf check`; every Python block runs, and every shell block runs
in bash (`-e`), in a sandbox home of its page, in the order of the page; the two commands are
the ones the Makefile and CI run. A comment right above a block changes what is done with it:

- `<!-- not run: WHY -->`: a Python block is only compiled, a shell block only `bash -n`'d,
  a TOML block only parsed (for what cannot run here: Slurm, conda, the two commands);
- `<!-- file: NAME -->`: the block is written to NAME in the page's sandbox (a later block
  runs it), not run by itself;
- `<!-- check: warns -->` / `<!-- check: fails -->`: a TOML block passes `q2pconf check` with
  warnings / fails it with a ConfigError (an old QIIME 2 file, a misspelt key);
- `<!-- output of: COMMAND -->` above a ```text block: COMMAND, run in the sandbox, prints
  every line of the block.

Marks combine with `;` (`<!-- file: my.toml; check: fails -->`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from conftest import check_where_its_interface_is
from q2pconf import ConfigError
from q2pconf.config import check

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
SHELLS = ("sh", "bash", "shell", "console")
RUN_TIMEOUT = 180  # seconds one block may take (a hang guard: a block takes a few seconds)
BIN = Path(sys.executable).parent  # python and q2pconf of this environment

Block = namedtuple("Block", "page line lang text marks")


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of a page (fences at the start of a line), with their marks."""
    found, lines = [], (ROOT / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"```(\w*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        end = lines.index("```", index + 1)
        text = "\n".join(lines[index + 1:end]) + "\n"
        found.append(Block(page, index + 1, opening.group(1), text, _marks(lines[:index])))
        index = end + 1
    return found


def _marks(before: list[str]) -> dict[str, str]:
    """`<!-- key: value; key: value -->` on the last non-blank line before a fence."""
    text = next((line.strip() for line in reversed(before) if line.strip()), "")
    comment = re.fullmatch(r"<!--(.*)-->", text)
    if not comment:
        return {}
    pairs = (part.partition(":") for part in comment.group(1).split(";"))
    return {key.strip(): value.strip() for key, _, value in pairs}


ALL = [block for page in PAGES for block in blocks(page)]
TOML_BLOCKS = [block.text for block in blocks("README.md") if block.lang == "toml"]
TOML = [block for block in ALL if block.lang == "toml"]
RUN_PAGES = [page for page in PAGES
             if any(b.lang in ("python", *SHELLS) or "output of" in b.marks for b in blocks(page))]


def _id(block: Block) -> str:
    return f"{block.page}:{block.line}"


def test_readme_has_toml_examples() -> None:
    assert len(TOML_BLOCKS) >= 2


def test_every_block_has_a_known_language_and_marks() -> None:
    known = {"python", "toml", "text", "yaml", *SHELLS}
    assert [(_id(b), b.lang) for b in ALL if b.lang not in known] == []
    marks = {"not run", "file", "check", "output of"}
    assert [(_id(b), b.marks) for b in ALL if set(b.marks) - marks] == []


@pytest.mark.parametrize("block", TOML, ids=_id)
def test_each_toml_example_passes_check(tmp_path: Path, block: Block) -> None:
    path = tmp_path / "example.toml"
    path.write_text(block.text)
    if "not run" in block.marks:
        tomllib.loads(block.text)
        return
    expected = block.marks.get("check", "passes")
    if expected == "fails":
        with pytest.raises(ConfigError):
            check(path)
        return
    if expected == "passes" and check_where_its_interface_is(path):
        return  # the cluster examples' ib0, checked in a namespace that has it
    settings = check(path)
    assert "default" in settings.labels
    if expected == "warns":
        assert settings.warnings != ()
    else:
        assert expected == "passes", block.marks
        assert settings.warnings == ()  # e.g. "htex_auto_scale" cancelling jobs that still start


@pytest.fixture(scope="module")
def home_with_a_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose cache holds one finished, traced run (for `q2pconf report` and
    `info --runs`), made once and copied for each page."""
    base = tmp_path_factory.mktemp("docs-home")
    script = base / "one_run.py"
    script.write_text("from q2pconf import parallel_pipeline, step\n"
                      "one = step(abs)\n"
                      "run = parallel_pipeline(lambda: one(-1))\n"
                      "assert run() == 1\n")
    config = base / "threads.toml"
    config.write_text('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "default"\n')
    _run([sys.executable, str(script)], _sandbox_env(base, QIIME2_CONFIG=str(config)), base)
    return base / "home"


def _sandbox_env(base: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("Q2PCONF_", "XDG_", "QIIME2_", "CONDA_", "PYTHON"))}
    home = base / "home"
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_DIRS=str(base / "etc-xdg"),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", EDITOR="true",
               Q2PCONF_PROGRESS="0", **extra)
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path,
         what: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    assert result.returncode == 0, (f"{what or command} exited {result.returncode}:\n"
                                    f"{result.stdout}\n{result.stderr}")
    return result


@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_code_runs(tmp_path: Path, home_with_a_run: Path, page: str) -> None:
    """The page's Python and shell blocks run in order, in one sandbox: HOME, the XDG
    directories and the working directory in tmp_path, no QIIME2_CONFIG or CONDA_PREFIX
    (so the vendored default, from memory), this environment's python and q2pconf first on
    PATH. Every Parsl part a block starts ends with its program (the test would hang else)."""
    shutil.copytree(home_with_a_run, tmp_path / "home", symlinks=True)
    work = tmp_path / "work"
    work.mkdir()
    env = _sandbox_env(tmp_path)
    for number, block in enumerate(blocks(page)):
        where = f"{_id(block)} ({block.lang} block)"
        if "file" in block.marks:
            (work / block.marks["file"]).write_text(block.text)
        elif block.lang == "python":
            _python(block, work / f"block_{number}.py", env, where)
        elif block.lang in SHELLS:
            _shell(block, work, env, where)
        elif "output of" in block.marks:
            _output(block, work, env, where)


def _output(block: Block, work: Path, env: dict[str, str], where: str) -> None:
    command = block.marks["output of"]
    printed = _run(["bash", "-c", f"{command} 2>&1 || true"], env, work).stdout
    missing = [line for line in block.text.splitlines() if line not in printed]
    assert missing == [], f"{where}: not printed by {command}:\n{printed}"


def _python(block: Block, path: Path, env: dict[str, str], where: str) -> None:
    path.write_text(block.text)
    if "not run" in block.marks:
        compile(block.text, where, "exec")
    else:
        _run([sys.executable, str(path)], env, path.parent, where)


def _shell(block: Block, work: Path, env: dict[str, str], where: str) -> None:
    _run(["bash", "-n", "-c", block.text], env, work, f"bash -n {where}")
    if "not run" not in block.marks:
        _run(["bash", "-e", "-o", "pipefail", "-c", block.text], env, work, where)


def test_docs_name_every_environment_variable() -> None:
    """Each Q2PCONF_* variable the package or its tests read is in the reference."""
    names = set()
    for path in [*(ROOT / "q2pconf").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        names.update(re.findall(r"Q2PCONF_[A-Z_]*[A-Z]", path.read_text()))
    reference = (ROOT / "docs" / "reference" / "environment.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in reference) == []


def test_the_two_commands_are_make_targets_and_ci_runs_the_second() -> None:
    commands = re.findall(r"^make (\w+)", README, flags=re.M)
    assert commands[:2] == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "demo: $(STAMP)\n\t$(BIN)/python examples/amplicon.py" in makefile
    # .ci/run runs it as a timed part: part "NAME" make test
    assert re.search(r'^part "[^"]+" make test$', (ROOT / ".ci" / "run").read_text(), flags=re.M)
