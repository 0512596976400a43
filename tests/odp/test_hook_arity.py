"""A protocol hook override that cannot take the arguments its hook is called with is
refused when the class is created (`_check_hook_arity` in `odp/protocols/base.py`), one
line naming the class, the hook and the arguments: before, the run raised a TypeError
inside the core, reported as the protocol's `error` verdict (exit 1, shrunk, a token) for
a mistake in how the class is written (new-user trial: ``must_retry(self, umem)``).
Each protocol is a user's module outside the package."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import ProtocolUsageError
from tests._usermod import pythonpath_env, write_user_module

UserModule = Callable[..., types.ModuleType]

TOO_FEW = """
from odp_async.odp.protocols.kvm_seq import KvmSeq


class TooFew(KvmSeq):
    name = "too-few"
    summary = "must_retry without rng and token"

    def must_retry(self, umem):
        return False
"""

TOO_MANY = """
from odp_async.odp import TreeProtocol


class TooMany(TreeProtocol):
    name = "too-many"
    summary = "on_insert wanting an argument nobody passes"

    def on_insert(self, umem, first, extra):
        pass
"""

STATIC_WITH_SELF = """
from odp_async.odp.protocols.kvm_seq import KvmSeq


class StaticWithSelf(KvmSeq):
    name = "static-with-self"
    summary = "a staticmethod that still names self"

    @staticmethod
    def must_retry(self, umem, rng, token):
        return False
"""

FINE = """
from odp_async.odp import TreeProtocol
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.odp.protocols.kvm_seq import KvmSeq


class Static(KvmSeq):
    name = "static"
    summary = "a staticmethod override: called without the instance"

    @staticmethod
    def must_retry(umem, rng, token):
        return False


class StaticOverStatic(IntervalSeq):
    name = "static-over-static"
    summary = "a staticmethod over a staticmethod: neither takes the instance"

    @staticmethod
    def _iv(umem):
        return IntervalSeq._iv(umem)


class Star(KvmSeq):
    name = "star"
    summary = "an override that takes anything"

    def must_retry(self, *args, **kwargs):
        return False


class Defaulted(TreeProtocol):
    name = "defaulted"
    summary = "an extra argument with a default"

    def on_insert(self, umem, first, extra=None):
        pass
"""


@pytest.mark.parametrize(
    ("source", "prefix", "message"),
    [
        (
            TOO_FEW,
            "toofew",
            ":TooFew: must_retry(self, umem) cannot take the arguments the hook it "
            "overrides (KvmSeq.must_retry) is called with: (self, umem, rng, token)",
        ),
        (
            TOO_MANY,
            "toomany",
            ":TooMany: on_insert(self, umem, first, extra) cannot take the arguments the "
            "hook it overrides (TreeProtocol.on_insert) is called with: (self, umem, first)",
        ),
        (
            STATIC_WITH_SELF,
            "staticself",
            ":StaticWithSelf: must_retry(self, umem, rng, token) cannot take the "
            "arguments the hook it overrides (KvmSeq.must_retry) is called with: "
            "(self, umem, rng, token)",
        ),
    ],
)
def test_an_override_that_cannot_take_its_arguments_is_refused(
    user_module: UserModule, source: str, prefix: str, message: str
) -> None:
    with pytest.raises(ProtocolUsageError) as caught:
        user_module(source, prefix)
    text = str(caught.value)
    module, _, rest = text.removeprefix("protocol class ").partition(":")
    assert module.startswith(prefix)
    assert ":" + rest == message


def test_overrides_that_take_their_arguments_are_accepted(user_module: UserModule) -> None:
    mod = user_module(FINE, "arityfine")
    assert mod.Static.must_retry(None, None, None) is False
    assert mod.StaticOverStatic.name == "static-over-static"
    assert mod.Star.name == "star"
    assert mod.Defaulted.name == "defaulted"


def test_the_cli_refuses_it_in_one_line_not_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, TOO_FEW, "toofew_cli", monkeypatch)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            "registration-race",
            "-p",
            f"{name}:TooFew",
            "--schedules",
            "5",
        ],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "must_retry(self, umem) cannot take the arguments" in proc.stderr
    assert "Traceback" not in proc.stderr
