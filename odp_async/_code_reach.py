"""What a function's code reaches past its arguments: the static facts of its bytecode.

Contract
    `code_tree(code)` is `code` and every code object nested in it, depth first.

    `instructions(code)` is ``dis.get_instructions(code)`` as a tuple, memoised per code
    object (a walk that runs at every run of a search reads the same code each time).

    `code_facts(code)` reads a code object (and the code objects nested in it: its
    lambdas, comprehensions, inner functions) with `dis` and returns a `CodeFacts`:

    * the module globals it rebinds or deletes (``global n; n += 1``: STORE_GLOBAL,
      DELETE_GLOBAL);
    * the free variables of its closure it rebinds (``nonlocal n; n += 1``);
    * the static chains it loads: a global or a free variable, then the attribute names
      that follow it (``mymod.state.get`` is ``("global", "mymod", ("state", "get"))``);
      a function-level import with the names it takes (``from mymod import state``);
    * the static chains it writes an attribute of (``Counter.total += 1``,
      ``mymod.flag = True``, ``type(self).total += 1``, ``self.__class__.total = 0``,
      ``cls.total = 0``): the owner's chain and the attribute;
    * every attribute name it loads (for a module imported into a local, whose
      attributes are reached through that local).

    Pure: a function of the code object alone, memoised by it.  Sync; never runs the
    code.  What a static read cannot follow (``getattr(mod, name)`` with a computed name,
    ``exec``, an owner computed at run time other than ``type(self)``) is not in the
    facts: `odp_async.tracked` says what it does about those.

See also
    `odp_async.tracked` (the walk that judges what these chains reach).
"""

from __future__ import annotations

import dis
import functools
import types
from collections.abc import Sequence

import attrs

__all__ = ["Chain", "CodeFacts", "code_facts", "code_tree", "instructions"]

#: ``(kind, name, attrs)``: kind ``"global"`` (a module global or builtin of the
#: function), ``"deref"`` (a free variable of its closure), ``"import"`` (a module
#: imported in the function: `name` is ``"<level>:<module>"``) or ``"self"`` (its first
#: argument: only as the owner of a write, ``cls.x = v`` or, with attrs
#: ``("__class__",)``, ``type(self).x = v`` and ``self.__class__.x = v``).
Chain = tuple[str, str, tuple[str, ...]]


@attrs.frozen
class CodeFacts:
    """The static facts of one code object and the code nested in it (see the module
    docstring)."""

    global_writes: frozenset[str]
    deref_writes: frozenset[str]
    loads: frozenset[Chain]
    attr_writes: frozenset[tuple[Chain, str]]
    attr_names: frozenset[str]


_MEMO: dict[types.CodeType, CodeFacts] = {}

_ATTR_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
#: What follows an IMPORT_NAME while it takes names (``from m import a, b``).
_IMPORT_TAIL = frozenset(
    {"IMPORT_FROM", "STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF", "POP_TOP"}
)


def code_facts(code: types.CodeType) -> CodeFacts:
    """The facts of `code` (memoised per code object: equal code, equal facts)."""
    found = _MEMO.get(code)
    if found is None:
        found = _MEMO[code] = _scan(code, frozenset(code.co_freevars))
    return found


def _scan(code: types.CodeType, outer_free: frozenset[str]) -> CodeFacts:
    # `outer_free`: the free variables of the function whose code this is (or nests in):
    # a nested code object's free variable is either one of them (the function's own
    # closure) or a cell of an enclosing call (local to that call: not shared state).
    ins = instructions(code)
    global_writes: set[str] = set()
    deref_writes: set[str] = set()
    loads: set[Chain] = set()
    attr_writes: set[tuple[Chain, str]] = set()
    attr_names: set[str] = set()
    ends: dict[int, Chain] = {}  # index of an instruction -> the chain it ends
    first = code.co_varnames[0] if code.co_argcount and code.co_varnames else None
    i = 0
    n = len(ins)
    while i < n:
        op = ins[i].opname
        name = ins[i].argval
        if op in _ATTR_LOADS or op == "IMPORT_FROM":
            attr_names.add(str(name))
        start: Chain | None = None
        if op == "CALL" and first is not None and _type_of_first(ins, i, first):
            ends[i] = ("self", first, ("__class__",))  # type(self)
        if op == "LOAD_FAST" and name == first:
            start = ("self", str(name), ())
        elif op in ("LOAD_GLOBAL", "LOAD_NAME"):
            start = ("global", str(name), ())
        elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF") and name in outer_free:
            start = ("deref", str(name), ())
        elif op == "IMPORT_NAME":
            level = ins[i - 2].argval if i >= 2 and ins[i - 2].opname == "LOAD_CONST" else 0
            start = ("import", f"{level if isinstance(level, int) else 0}:{name}", ())
            froms = []
            j = i + 1
            while j < n and ins[j].opname in _IMPORT_TAIL:
                if ins[j].opname == "IMPORT_FROM":
                    froms.append(str(ins[j].argval))
                j += 1
            for item in froms:
                loads.add((start[0], start[1], (item,)))
        elif op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            global_writes.add(str(name))
        elif op in ("STORE_DEREF", "DELETE_DEREF") and name in outer_free:
            deref_writes.add(str(name))
        elif op in ("STORE_ATTR", "DELETE_ATTR"):
            owner = _owner(ins, i, ends)
            if owner is not None:
                attr_writes.add((owner, str(name)))
        if start is not None:
            kind, base, _ = start
            chain: list[str] = []
            ends[i] = start
            if kind != "self":
                loads.add(start)
            while i + 1 < n and ins[i + 1].opname in _ATTR_LOADS:
                i += 1
                chain.append(str(ins[i].argval))
                attr_names.add(str(ins[i].argval))
                ends[i] = (kind, base, tuple(chain))
                if kind != "self":
                    loads.add(ends[i])
                elif chain != ["__class__"]:
                    break  # an attribute of the instance: its fields are noted
        i += 1
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner = _scan(const, outer_free)
            global_writes |= inner.global_writes
            deref_writes |= inner.deref_writes
            loads |= inner.loads
            # a nested function's first argument is its own, not this function's
            attr_writes |= {w for w in inner.attr_writes if w[0][0] != "self"}
            attr_names |= inner.attr_names
    return CodeFacts(
        frozenset(global_writes),
        frozenset(deref_writes),
        frozenset(loads),
        frozenset(attr_writes),
        frozenset(attr_names),
    )


def _type_of_first(ins: Sequence[dis.Instruction], i: int, first: str) -> bool:
    """Whether the CALL at `i` is ``type(<first argument>)``."""
    j = i - 1
    if j >= 0 and ins[j].opname == "PRECALL":
        j -= 1
    return (
        j >= 1
        and ins[j].opname == "LOAD_FAST"
        and ins[j].argval == first
        and ins[j - 1].opname == "LOAD_GLOBAL"
        and ins[j - 1].argval == "type"
    )


def _owner(ins: Sequence[dis.Instruction], i: int, ends: dict[int, Chain]) -> Chain | None:
    """The static chain whose attribute the STORE_ATTR/DELETE_ATTR at `i` writes, if the
    owner is one: ``Owner.x = v`` (the owner loaded just before), ``Owner.x += v`` (the
    owner loaded, copied, its ``x`` loaded ... swapped back before the store)."""
    if i == 0:
        return None
    before = i - 1
    if ins[before].opname == "SWAP" and ins[before].argval == 2:
        name = ins[i].argval
        for j in range(before - 1, 0, -1):
            if (
                ins[j].opname == "COPY"
                and ins[j].argval == 1
                and j + 1 < len(ins)
                and ins[j + 1].opname == "LOAD_ATTR"
                and ins[j + 1].argval == name
            ):
                return ends.get(j - 1)
        return None
    return ends.get(before)


@functools.lru_cache(maxsize=4096)
def code_tree(code: types.CodeType) -> tuple[types.CodeType, ...]:
    """`code` and the code objects nested in it (lambdas, comprehensions, inner
    functions), depth first, `code` first.  Pure, memoised; sync."""
    found = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(code_tree(const))
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def instructions(code: types.CodeType) -> tuple[dis.Instruction, ...]:
    """The instructions of `code` alone (not its nested code), as ``dis`` reads them.
    Pure, memoised per code object (equal code objects read alike); sync."""
    return tuple(dis.get_instructions(code))
