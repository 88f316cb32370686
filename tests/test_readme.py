"""What the README shows must work: every TOML block passes `q2pconf check`, and the two
commands are the ones the Makefile and CI run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import check_where_its_interface_is
from q2pconf.config import check

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", README, flags=re.S)


def test_readme_has_toml_examples() -> None:
    assert len(TOML_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(TOML_BLOCKS)))
def test_each_toml_example_passes_check(tmp_path: Path, index: int) -> None:
    text = TOML_BLOCKS[index]
    path = tmp_path / "example.toml"
    path.write_text(text)
    if check_where_its_interface_is(path):
        return
    settings = check(path)
    assert "default" in settings.labels
    assert settings.warnings == ()  # e.g. "htex_auto_scale" cancelling jobs that still start


def test_the_two_commands_are_make_targets_and_ci_runs_the_second() -> None:
    commands = re.findall(r"^make (\w+)", README, flags=re.M)
    assert commands[:2] == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "demo: $(STAMP)\n\t$(BIN)/python examples/amplicon.py" in makefile
    # .ci/run runs it as a timed part: part "NAME" make test
    assert re.search(r'^part "[^"]+" make test$', (ROOT / ".ci" / "run").read_text(), flags=re.M)
