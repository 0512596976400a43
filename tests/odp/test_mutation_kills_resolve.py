"""`resolve_protocol` with ``"module:Class"`` references, from a user module written
outside the package: what it finds, and the exact one-line refusal for each bad reference."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from odp_async.errors import InvalidArgument
from odp_async.odp import PROTOCOLS, TreeProtocol, resolve_protocol
from tests._usermod import forget, module_name

UserModule = Callable[..., types.ModuleType]

SOURCE = """
from odp_async.odp import TreeProtocol


class Mine(TreeProtocol):
    name = "mine"
    summary = "a user protocol"


class Outer:
    class Inner(TreeProtocol):
        name = "inner"
        summary = "a nested user protocol"


NOT_A_CLASS = 3
REPR_OF_100 = "x" * 98
REPR_OF_101 = "x" * 99
"""


def refusal(ref: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        resolve_protocol(ref)
    return str(info.value)


def test_a_reference_names_a_class_of_a_user_module(user_module: UserModule) -> None:
    mod = user_module(SOURCE, "resolve")
    assert resolve_protocol(f"{mod.__name__}:Mine") is mod.Mine
    assert resolve_protocol(f"{mod.__name__}:Outer.Inner") is mod.Outer.Inner
    assert resolve_protocol(mod.Mine) is mod.Mine
    assert resolve_protocol("range-list") is PROTOCOLS["range-list"]


def test_each_bad_reference_is_refused_with_its_own_line(user_module: UserModule) -> None:
    mod = user_module(SOURCE, "resolve")
    m = mod.__name__
    assert refusal(f"{m}:NOT_A_CLASS") == (
        f"protocol '{m}:NOT_A_CLASS' names 3, which is not an OdpProtocol subclass"
    )
    assert refusal(f"{m}:Missing") == f"module '{m}' has no 'Missing' (protocol '{m}:Missing')"
    assert refusal(f"{m}:Outer.Missing") == (
        f"module '{m}' has no 'Outer.Missing' (protocol '{m}:Outer.Missing')"
    )
    assert refusal(f"{m}:Mine:Extra") == (  # the module is what precedes the first colon
        f"module '{m}' has no 'Mine:Extra' (protocol '{m}:Mine:Extra')"
    )
    for ref in (":Mine", f"{m}:"):
        assert refusal(ref) == f"protocol reference {ref!r} is not of the form 'module:Class'"
    assert refusal("no_such_module_s9:Mine") == (
        "cannot import module 'no_such_module_s9' of protocol 'no_such_module_s9:Mine': "
        "No module named 'no_such_module_s9' (is it on sys.path / PYTHONPATH?)"
    )
    assert refusal("odp2015") == (
        "unknown protocol 'odp2015'; expected one of naive, odp2014, odp2014-ctx, "
        "range-list, hmm-pool, kvm-seq, interval-seq, 'module:Class' or an OdpProtocol subclass"
    )


def test_a_module_that_raises_on_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = module_name("resolve_broken", tmp_path)
    (tmp_path / f"{b}.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert refusal(f"{b}:X") == (
            f"importing module '{b}' of protocol '{b}:X' raised ZeroDivisionError: "
            "division by zero"
        )
    finally:
        forget(b)


class _FromMain(TreeProtocol):
    name = "from-main"
    summary = "found in __main__"


def test_a_reference_to_the_module_running_as_main_is_found_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``python -m mymod`` runs mymod as ``__main__``: ``mymod:Class`` must name the
    class of that run (importing mymod again would make a second, different class)."""
    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="s9_not_importable")  # type: ignore[assignment]
    main.Proto = _FromMain  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert resolve_protocol("s9_not_importable:Proto") is _FromMain
    assert refusal("s9_not_importable:Nope") == (
        "module 's9_not_importable' has no 'Nope' (protocol 's9_not_importable:Nope')"
    )


def test_a_long_non_protocol_is_shown_cut_at_100_characters(user_module: UserModule) -> None:
    """A reference to something that is not a protocol shows its repr whole up to 100
    characters, and past that its first 97 and its type (a module's repr can be long)."""
    mod = user_module(SOURCE, "resolve")
    m = mod.__name__
    whole = repr("x" * 98)
    assert len(whole) == 100
    assert refusal(f"{m}:REPR_OF_100") == (
        f"protocol '{m}:REPR_OF_100' names {whole}, which is not an OdpProtocol subclass"
    )
    cut = repr("x" * 99)[:97]
    assert refusal(f"{m}:REPR_OF_101") == (
        f"protocol '{m}:REPR_OF_101' names {cut}... (a str), which is not an OdpProtocol subclass"
    )


def test_a_reference_resolves_by_import_when_no_main_module_is_known(
    user_module: UserModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An embedding interpreter may have no ``__main__`` module (or one without a spec):
    a ``module:Class`` reference is then imported as any other."""
    mod = user_module(SOURCE, "resolve")
    monkeypatch.delitem(sys.modules, "__main__")
    assert resolve_protocol(f"{mod.__name__}:Mine") is mod.Mine
    monkeypatch.setitem(sys.modules, "__main__", object())
    assert resolve_protocol(f"{mod.__name__}:Outer.Inner") is mod.Outer.Inner
