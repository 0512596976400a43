"""A user protocol's ``OPTIONS`` are frozen at class creation (so DPOR still reduces), and
a protocol class needs a ``name`` of its own (trial 17b, findings 3 and 5).  The
protocols live in a module in ``tmp_path``, imported by name as a user's would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.odp.protocols.base import ProtocolOptions
from tests._usermod import forget, write_user_module

USER_MODULE = """
from typing import Any, ClassVar

from odp_async.odp import TreeProtocol
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.tracked import tracked


@tracked
class Plain(KvmSeq):
    name: ClassVar[str] = "user-plain"
    summary: ClassVar[str] = "kvm-seq under another name"


@tracked
class WithOptions(KvmSeq):
    name: ClassVar[str] = "user-options"
    summary: ClassVar[str] = "kvm-seq with options of its own, as the README says"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "label": "x"}


class NoName(TreeProtocol):
    pass


class Inherits(Plain):
    summary: ClassVar[str] = "keeps user-plain's name"
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import importlib

    name = write_user_module(tmp_path, USER_MODULE, "userprotoopts", monkeypatch)
    yield importlib.import_module(name)
    forget(name)


def test_declared_options_are_frozen_and_dpor_still_completes(usermod: Any) -> None:
    options = usermod.WithOptions.OPTIONS
    assert isinstance(options, ProtocolOptions)
    assert options == {"literal_release": False, "label": "x"}
    with pytest.raises(TypeError):
        options["label"] = "y"
    plain = explore("fault-vs-munmap", usermod.Plain, chooser="dpor", schedules=2000)
    mine = explore("fault-vs-munmap", usermod.WithOptions, chooser="dpor", schedules=2000)
    assert plain.claim.startswith("complete:"), plain.claim
    assert mine.claim == plain.claim
    tuned = explore(
        "fault-vs-munmap",
        usermod.WithOptions,
        chooser="dpor",
        schedules=2000,
        options={"label": "y"},
    )
    assert tuned.claim == plain.claim


def test_a_mutable_option_default_is_refused_when_the_class_is_made(usermod: Any) -> None:
    from odp_async.odp.protocols.kvm_seq import KvmSeq

    with pytest.raises(InvalidArgument, match=r"Bad.OPTIONS\['seen'\] must be an immutable"):

        class Bad(KvmSeq):
            name = "bad"
            OPTIONS = {"seen": []}  # noqa: RUF012


@pytest.mark.parametrize(
    ("cls", "parent", "inherited"),
    [("NoName", "TreeProtocol", "tree"), ("Inherits", "Plain", "user-plain")],
)
def test_a_protocol_without_a_name_of_its_own_is_refused(
    usermod: Any, capsys: pytest.CaptureFixture[str], cls: str, parent: str, inherited: str
) -> None:
    ref = f"{usermod.__name__}:{cls}"
    code = main(["explore", "fault-vs-munmap", "-p", ref, "--schedules", "5"])
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, out + err
    assert err.count("\n") == 1, err
    assert f"protocol {ref!r} has no name of its own" in err
    assert f"inherits name = {inherited!r} from {parent}" in err


@pytest.mark.parametrize(
    ("option", "what"),
    [("name", "an attribute of the class (str)"), ("ctx", "the constructor's parameter")],
)
def test_an_option_named_like_an_attribute_is_refused_when_the_class_is_made(
    option: str, what: str
) -> None:
    # trial 40a, f5: OPTIONS = {"name": ...} made the instance's repr another protocol's;
    # {"ctx": ...} failed at run time with "got multiple values for argument 'ctx'"
    import re

    from odp_async.errors import ProtocolUsageError
    from odp_async.odp.protocols.kvm_seq import KvmSeq

    message = re.escape(f"option {option!r} is named like {what}")
    with pytest.raises(ProtocolUsageError, match=message):

        class Clashes(KvmSeq):
            name = "u-clashes"
            summary = "an option named like an attribute"
            OPTIONS = {option: "x"}  # noqa: RUF012


CONSTRUCTOR_SETS_IT = """
from typing import Any, ClassVar

from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.tracked import tracked


@tracked
class LockOption(KvmSeq):
    name: ClassVar[str] = "u-lock-option"
    summary: ClassVar[str] = "an option the constructor overwrites (KvmSeq sets mmu_lock)"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "mmu_lock": "x"}
"""


def test_an_option_the_constructor_overwrites_is_refused(tmp_path: Path) -> None:
    # trial 40a, f5: `-o mmu_lock=abc` was shown in the label and did nothing
    from tests._usermod import cli_in

    (tmp_path / "lockoption.py").write_text(CONSTRUCTOR_SETS_IT)
    done = cli_in(
        tmp_path, "explore", "registration-race", "-p", "lockoption:LockOption",
        "-o", "mmu_lock=abc", "--schedules", "5",
    )  # fmt: skip
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert "option 'mmu_lock' was 'abc', but the constructor set the attribute" in done.stderr
    assert "Traceback" not in done.stderr
