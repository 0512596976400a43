"""A malformed ``--cluster`` address (a port outside 1..65535, no port, no host, a
host that cannot be one) is one line naming it, at once: ``--cluster tcp://host:99999``
took Dask's whole connect timeout (about 11 s) to fail."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from odp_async.cli import ExitCode, main


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("tcp://host:99999", "port '99999' is not a number from 1 to 65535"),
        ("tcp://127.0.0.1:0", "port '0' is not a number from 1 to 65535"),
        ("tcp://[::1]:65536", "port '65536' is not a number from 1 to 65535"),
        ("tcp://host:x", "port 'x' is not a number"),
        ("tcp://host", "names no port"),
        ("tcp://:8786", "names no host"),
        ("tcp://my host:8786", "'my host' is not a host name or IP address"),
    ],
)
@pytest.mark.parametrize("command", [["explore", "classic:lost-update"], ["matrix"]])
def test_a_malformed_address_is_refused_before_any_connection(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    where: str,
    says: str,
) -> None:
    # no Dask to connect with: an attempt would say the extra is missing instead
    monkeypatch.setitem(sys.modules, "odp_async.explore.dask_executor", None)
    err = _one_line(capsys, [*command, "--cluster", where])
    assert err.startswith(f"odp-async: error: cluster address {where!r}"), err
    assert says in err, err


def test_an_out_of_range_port_fails_at_once() -> None:
    argv = ["explore", "classic:lost-update", "--cluster", "tcp://host:99999"]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - start
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert proc.stderr == (
        "odp-async: error: cluster address 'tcp://host:99999': port '99999' is not a number "
        "from 1 to 65535\n"
    )
    assert took < 8, took  # Dask's connect timeout alone is 10 s
