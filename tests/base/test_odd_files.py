"""Files no person means to write get the one ConfigError message: no traceback, no read that
never ends, no reading a device or a FIFO at all."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from q2pconf.config import check
from q2pconf._base.errors import ConfigError
from q2pconf._base.tomlfile import MAX_BYTES

THREADS = '[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "default"\n'


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`q2pconf ARGS` in a child with a deadline: a read that never ends fails the test."""
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def one_message(done: subprocess.CompletedProcess[str], path: object, words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) <= 3, done.stderr[-2000:]
    assert done.stderr.startswith(f"{path}: ") and words in done.stderr
    assert "\n  Fix: " in done.stderr


@pytest.mark.parametrize("text", [
    "a = " + "[" * 5000 + "]" * 5000 + "\n",
    "a = " + "{b = " * 5000 + "1" + "}" * 5000 + "\n",
    "[parsl]\nx = " + "[{y = " * 2000 + "1" + "}]" * 2000 + "\n",
], ids=["arrays", "inline-tables", "mixed"])
def test_nesting_thousands_deep_is_one_message(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    one_message(cli("check", str(path)), path, "nests tables or arrays deeper")


def test_dotted_keys_thousands_deep_are_checked_without_a_traceback(tmp_path):
    path = tmp_path / "dotted.toml"
    path.write_text("[parsl]\n" + ".".join(["k"] * 5000) + " = 1\n" + THREADS)
    done = cli("check", str(path))
    one_message(done, path, "")
    # tomllib builds the nested tables; tomli (Python 3.10) runs out of stack doing it
    assert ("Config has no setting 'k'" in done.stderr
            or "nests tables or arrays deeper" in done.stderr), done.stderr


def test_dev_zero_as_qiime2_config_is_refused_unread(tmp_path):
    env = {**os.environ, "QIIME2_CONFIG": "/dev/zero"}
    done = cli("info", env=env)
    one_message(done, "/dev/zero", "is a character device, not a config file")
    assert "QIIME2_CONFIG" in done.stderr


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    one_message(cli("check", str(fifo)), fifo, "is a named pipe (FIFO)")
    env = {**os.environ, "QIIME2_CONFIG": str(fifo)}
    one_message(cli("info", env=env), fifo, "is a named pipe (FIFO)")


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "config.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        one_message(cli("check", str(path)), path, "is a socket")
    finally:
        server.close()


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.toml"
    with open(path, "wb") as handle:
        handle.truncate(8 << 30)  # sparse: 8 GiB of zeros that take no disk
    one_message(cli("check", str(path)), path, "is larger than")


def test_a_file_just_under_the_limit_is_read(tmp_path):
    path = tmp_path / "long.toml"
    body = THREADS + "# padding\n"
    path.write_text(body + "#" * (MAX_BYTES - len(body) - 1) + "\n")
    assert os.path.getsize(path) == MAX_BYTES
    assert check(path).labels == ("default",)
    path.write_text(path.read_text() + "#")
    with pytest.raises(ConfigError, match="is larger than"):
        check(path)


@pytest.mark.parametrize("mark, name", [(b"\xef\xbb\xbf", "UTF-8 byte-order mark"),
                                        (b"\xff\xfe", "UTF-16 byte-order mark")])
def test_a_byte_order_mark_is_named(tmp_path, mark, name):
    path = tmp_path / "bom.toml"
    path.write_bytes(mark + THREADS.encode())
    done = cli("check", str(path))
    one_message(done, path, name)
    assert "editors do not show" in done.stderr and "without a byte-order mark" in done.stderr


def test_a_symlink_to_a_regular_file_is_still_read(tmp_path):
    real = tmp_path / "real.toml"
    real.write_text(THREADS)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    assert check(link).labels == ("default",)


def test_a_directory_is_refused(tmp_path):
    one_message(cli("check", str(tmp_path)), tmp_path, "is a directory, not a config file")


def test_an_unreadable_file_names_the_reason(tmp_path):
    path = tmp_path / "secret.toml"
    path.write_text(THREADS)
    path.chmod(0)
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
               sys.executable, "-m", "q2pconf", "check", str(path)]
    if os.geteuid() != 0:
        command = command[3:]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    one_message(done, path, "cannot be read: Permission denied")


def test_devices_are_refused_through_the_python_api():
    """The same refusal without a child process (a FIFO is tested in one: it could block)."""
    for path in (Path("/dev/zero"), Path("/dev/null")):
        with pytest.raises(ConfigError, match="not a config file"):
            check(path)


def test_a_fifo_in_place_of_the_catalog_cache_does_not_block_a_check(tmp_path, monkeypatch):
    """The catalog of Parsl's signatures is cached in the user's cache directory; a FIFO
    found there is ignored (rebuilt over), not read."""
    from q2pconf._catalog import accepted as catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = catalog.cache_path(catalog.parsl_root())
    cache.parent.mkdir(parents=True)
    os.mkfifo(cache)
    config = tmp_path / "c.toml"
    config.write_text(THREADS)
    done = cli("check", str(config), env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert cache.is_file()  # replaced by a real cache
