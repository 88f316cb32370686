"""What the README shows must work: every TOML block passes `q2pconf check`, and the two
commands are the ones the Makefile and CI run."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_tool
from q2pconf.config import check
from q2pconf.local_limits import interfaces

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
    interface = re.search(r'ifname = "(\w+)"', text)
    if interface is not None and interface[1] not in interfaces():
        checks_where_the_interface_is(path, interface[1])
        return
    settings = check(path)
    assert "default" in settings.labels
    assert settings.warnings == ()  # e.g. "htex_auto_scale" cancelling jobs that still start


def checks_where_the_interface_is(path: Path, name: str) -> None:
    """The example names the login node's interface (`ib0`), which `check` requires here:
    check it in a network namespace holding one, as the Slurm test cluster's controller does."""
    require_tool("unshare")
    require_tool("ip")
    setup = (f"ip link add {name} type bridge && ip addr add 10.77.0.1/24 dev {name} && "
             f"ip link set {name} up")
    done = subprocess.run(["unshare", "-rn", "sh", "-c", f'{setup} && exec "$0" -m q2pconf '
                           f'check "$1"', sys.executable, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_two_commands_are_make_targets_and_ci_runs_the_second() -> None:
    commands = re.findall(r"^make (\w+)", README, flags=re.M)
    assert commands[:2] == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "demo: $(STAMP)\n\t$(BIN)/python examples/amplicon.py" in makefile
    # .ci/run runs it as a timed part: part "NAME" make test
    assert re.search(r'^part "[^"]+" make test$', (ROOT / ".ci" / "run").read_text(), flags=re.M)
