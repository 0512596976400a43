"""Scenario files: an ODP scenario written in TOML, without Python.

Contract
    `load_scenario(path)` reads a TOML file (with the standard library's `tomllib`),
    checks all of it, and returns a `Scenario` (``needs_world=True``) whose body does
    what the built-ins of `odp_async.scenarios.builtin` do: build the setup in the main
    task, then start the actors, in file order, in one task group, each a task named
    after its actor.  An actor with ``after`` first waits on a gate (a `Completion`
    with ``gate=True``) that each named actor opens when it has finished all its
    operations: program order, not synchronization under test.  The body returns a dict
    with one outcome per operation, keyed ``"<actor>.<i>"`` (``"setup.<i>"`` for the
    setup).  `read_scenario(path)` returns the same scenario with what only the file
    says (its protocol list).

    A file written with the same operations in the same order as a Python scenario
    creates the same tasks, which reach the same checkpoints in the same order: under
    the same chooser both runs make the same schedule (`tests/scenarios` holds every
    example in ``examples/`` to this against its built-in twin).

    A file is UTF-8 text; a UTF-8 byte-order mark in front (as Windows editors write
    one) is dropped before the TOML is read (`_text_of`), so it is no syntax error.

    Every problem raises `ScenarioFileError`, an `InvalidArgument`, whose message names
    the file, then the line (TOML syntax errors) or the key path (``actor[2].ops[0].op``),
    what was found and what was expected.  Every name (of the scenario, a file, an
    actor, an MR, a subscriber, a protocol) is a non-empty printable string of at most
    `MAX_NAME` characters.  Nothing is silently ignored: an unknown key is
    an error, so a typo cannot turn into a default.  Static checks: every range lies
    inside the mappings (for the setup, those of its earlier operations; for actors,
    those of the setup and of every ``mmap``/``mremap`` operation of any actor), every MR
    an operation names is registered by some ``register``, every file is declared, every
    subscriber name is subscribed by exactly one ``subscribe``, every ``after`` names
    another actor and the ``after`` order has no cycle; and the model's own rules where
    the file decides them: along the setup (run in order, alone) no ``mmap``/``mremap``
    onto a mapping, no MR registered while registered, no second ``deregister``, nothing
    after ``exit``; in actors, no ``mmap``/``mremap`` onto a mapping the setup leaves or
    another actor makes, and no ``register`` of a name the setup leaves registered or
    another actor registers, unless some actor unmaps (deregisters) it; one name is not
    both a plain and an implicit MR; per task (the setup, each actor, each work item), in
    program order, no ``unlock`` of an MR's lock the task does not hold at that point (one
    never taken, or taken by another task), no ``lock`` of one it already holds (not
    reentrant: it would wait for itself), no ``deregister`` or ``fault`` of an MR it holds
    (each waits for that mutex) and no lock still held at the task's end.  What
    only a run shows (an unordered actor's operation the model refuses in some schedules)
    raises `ScenarioUsageError` out of the run (`_Run.op`): the model's `InvalidArgument`
    for the operation itself, raised before any protocol or subscriber code ran in
    between, and a subscriber class whose constructor raises.  An exception of the code
    under test stays the run's ``error`` (`odp_async.scenarios.model_verdict`: never an
    expected ``found``).

Concurrency
    A loaded `Scenario` is a value: each run of its body builds fresh state (files, MRs,
    completions, outcomes) in its own world, so one scenario runs any number of times,
    in any process.

The format
    Four tables and an array of tables.  Addresses are byte addresses (TOML allows
    ``0x10000``); ``pages`` counts 4 KiB pages; a range is ``start`` and ``pages``,
    ``[start, start + pages * 0x1000)``, and ``start`` must be page-aligned.

    ``[scenario]``
        ``name`` (string, required), ``summary`` (string), ``protocols`` (array of protocol
        names or your own ``"module:Class"`` references: the protocols the scenario is
        meant for; default every built-in protocol).

    ``[setup]``
        ``files``: array of ``{ name, pages, hugetlb = false }``, created first.
        ``ops``: array of operations run in order by the main task before any actor
        starts.  A ``wait`` is not allowed here (nothing else runs yet).

    ``[[actor]]`` (at least one)
        ``name`` (str, unique; not ``main`` or ``setup``), ``after`` (array of actor
        names: start once these have finished), ``ops`` (non-empty array of operations,
        run in order).

    ``[expected]``
        ``<protocol> = "<verdict>"``; verdicts are ``found`` (the checker's safety
        violation), ``deadlock``, ``starvation``, ``clean`` and ``error`` (the code under
        test raised; never met by ``found``, nor ``found`` by it); a protocol not listed
        is expected ``clean``.  Every
        protocol named must be in ``scenario.protocols``.

    ``[script]``
        ``steps``: the interleaving that shows the bug, an array of ``[actor]`` (run it
        until it blocks or finishes) or ``[actor, "until"]`` (run it until it is paused
        at a checkpoint whose label contains the text, as the reports show the label,
        ``fault(B, 0x4000, commit)``, or as its Python str); see `ScriptChooser`.
        ``expected``: a table like ``[expected]`` for the protocols whose verdict under
        the script differs from their expected one.  ``unfollowed``: the protocols
        whose fix makes the script's interleaving impossible (``["interval-seq"]``), so
        that a run under them leaving the script is expected, not an error (one that
        follows it is a mismatch).  The loader checks that each step
        names an actor; whether each ``until`` is reached only a run shows:
        ``odp-async explore FILE --chooser script`` runs the script under each protocol
        and names a step the run did not reach (`odp_async.explore.scripted`).

    Operations (inline tables; ``op`` names the operation; defaults after ``=``):

    ==============  ========================================================  ========
    op              keys                                                      outcome
    ==============  ========================================================  ========
    ``mmap``        start, pages, writable = true, file, pgoff = 0,           "ok"
                    huge = false (transparent huge pages: anonymous, aligned)
    ``munmap``      start, pages                                              "ok"
    ``mremap``      start, pages, to (the new start)                          "ok"
    ``madvise``     start, pages, advice = "dontneed"                         "ok"
    ``mprotect``    start, pages, writable                                    "ok"
    ``migrate``     address (page-aligned)                                    "migrated"
                                                                              / "busy"
    ``cpu_fault``   address, write = false                                    "ok"
    ``populate``    start, pages, write = true (a ``cpu_fault`` per page)     "ok"
    ``truncate``    file, pages (the new size, may be 0)                      "ok"
    ``register``    mr, start, pages, writable = true                         "ok"
    ``deregister``  mr                                                        "ok"
    ``fault``       mr, address, pages = 1, write = false                     "resolved"
                                                                              / "failed"
                                                                              / "starved"
    ``dma``         mr, address, write = false                                "ok" /
                                                                              "error: ..."
    ``exit``        (none)                                                    "ok"
    ``sleep``       seconds (virtual time in the sim)                         "ok"
    ``complete``    completion (``complete_all`` of a named `Completion`)     "ok"
    ``wait``        completion (wait until some op completed it)              "ok"
    ``reap``        start, pages (the OOM reaper: non-blockable, may be       "reaped"
                    refused; see `AddressSpace.reap`)                         / "refused"
    ``mmget``       (none): take an ``mm_users`` reference                    "ok"
    ``mmput``       (none): drop one; the last runs the teardown here         "ok"
    ``mmput_async`` (none): drop one; the last queues the teardown            "ok"
    ``lock``        mr (take the MR's ``umem_mutex``)                         "ok"
    ``unlock``      mr (release it)                                           "ok"
    ``register_``   mr, child_pages = 4, and the historical mistakes of       "ok"
    ``implicit``    `odp_async.odp.implicit.ImplicitMr`: free_in_invalidate,
                    no_usecount_wait, plain_store (all false: today's kernel)
    ``deregister_`` mr (an implicit MR)                                       "ok"
    ``implicit``
    ``fault_``      mr, address, pages = 1, write = false (the faulting task  "resolved"
    ``implicit``    finds or creates the children)                            / "failed"
                                                                              / "starved"
    ``dma_``        mr, address, write = false (through the MR's KSM; a       "ok" /
    ``implicit``    missing translation faults first)                         "error: ..."
    ``subscribe``   sub, kind: ``"kvm"`` (`KvmMmu`), ``"hmm"`` (`HmmMirror`)   "ok"
                    or your own ``"module:Class"`` (built as
                    ``Class(mm, checker, sub)``; async callbacks), registered
                    on the mm; one ``subscribe`` per name in the file
    ``sub_fault``   sub, address, write = false (the subscriber's ``fault``)  "resolved"
                                                                              / "failed"
                                                                              / "starved"
    ``sub_access``  sub, address, write = false (``access``, checked like a   "hit" /
                    DMA)                                                      "miss"
    ``unsubscribe`` sub: `AddressSpace.teardown_notifier` (unregister and     "ok"
                    free it, as the mm's ``notifier_teardown`` says)
    ``queue_work``  work, ops (an array of operations the work item runs in   "queued" /
                    its kworker task; every ``queue_work`` of a name lists    "pending"
                    the same ops) on the world's workqueue
    ``flush_work``  work                                                      "flushed"
                                                                              / "idle"
    ``cancel_work`` work (``cancel_work_sync``)                               "cancelled"
                                                                              / "idle"
    ``mm_option``   option, value: a notifier-core variant of the mm          "ok"
                    (``nonblock_failure_rule``, ``release_order``,
                    ``interval_remove_wait``, ``notifier_teardown``)
    ==============  ========================================================  ========

    An actor holds a ``lock`` only across the operations between it and its ``unlock``
    that reach a checkpoint: tasks switch only at checkpoints (a kernel without
    preemption), and ``unlock`` never blocks, so ``lock`` directly followed by
    ``unlock`` opens no window.  Put ``{ op = "sleep", seconds = 0 }`` (a bare
    checkpoint) between them to hold the lock across one.  ``lock`` adds no checkpoint of
    its own after the acquire so that a file runs the same steps as its Python twin.

    ``fault`` is the device's page fault on the MR's key (`UContext.device_fault`): on an
    MR deregistered or being deregistered (by any actor, or earlier by the same one) it
    is dropped, ``"failed"``, and touches nothing, as mlx5 drops a fault whose key
    deregistration revoked; a file cannot fault through a stale pointer.

    ``fault``, ``dma`` and ``cpu_fault`` take any byte address (the page holding it is
    used); ``fault`` and ``dma`` must fall inside a registration of their MR.  An
    operation the model refuses (e.g. a ``register`` over a range an earlier ``munmap``
    removed) ends the run, as it would in Python, and is the file's mistake: a
    `ScenarioUsageError` (see the contract above), not the protocol's violation.

    A complete example: the 2014-09-07 registration race (``examples/registration-race.toml``
    is the same scenario, commented; `tests/scenarios` loads this one too)::

        [scenario]
        name = "registration-race"
        summary = "madvise(DONTNEED) under mmap_sem read runs while B registers"
        protocols = ["naive", "odp2014", "odp2014-ctx", "range-list", "hmm-pool",
                     "kvm-seq", "interval-seq"]

        [setup]
        files = []
        ops = [
            { op = "mmap", start = 0x0, pages = 8 },
            { op = "register", mr = "A", start = 0x0, pages = 8 },
            { op = "mmap", start = 0x10000, pages = 16 },
            { op = "populate", start = 0x10000, pages = 16 },
        ]

        [[actor]]
        name = "madvise"
        ops = [{ op = "madvise", start = 0x10000, pages = 16 }]

        [[actor]]
        name = "register"
        ops = [{ op = "register", mr = "B", start = 0x10000, pages = 16 }]

        [[actor]]
        name = "fault"
        after = ["register"]
        ops = [{ op = "fault", mr = "B", address = 0x14000, write = true }]

        [[actor]]
        name = "dma"
        after = ["fault"]
        ops = [{ op = "dma", mr = "B", address = 0x14000 }]

        [expected]
        naive = "found"
        odp2014 = "found"

        [script]
        steps = [["madvise", "after start"], ["register"], ["fault", "B.umem_mutex"],
                 ["madvise", "before end"], ["fault"], ["madvise"], ["dma"]]

    The setup is one ordered list rather than separate ``mmap``/``populate``/``mrs``
    lists because its order is program order too: the Python twin registers A (which
    subscribes the notifier) between two mmaps, and a file that keeps its twin's order
    keeps its twin's steps and schedules exactly.

See also
    `odp_async.scenarios.model` (`Scenario`, `Verdict`), `odp_async.scenarios.builtin`
    (the same scenarios in Python), ``examples/`` and its README.
"""

from __future__ import annotations

import codecs
import difflib
import importlib
import inspect
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

import attrs

from .. import _runtime as rt
from .._user_files import UnreadableFile, read_bytes
from ..addr import PAGE_SIZE
from ..device import DmaError
from ..errors import InvalidArgument
from ..mm import HPAGE_PAGES, AddressSpace, File, subscription_problem
from ..odp.implicit import ImplicitMr
from ..odp.protocols import PROTOCOLS, resolve_protocol
from ..odp.umem import Umem
from ..subscribers import HmmMirror, KvmMmu
from ..sync import Completion
from ..tracked import TrackedDict, tracked
from ..workqueue import WorkItem
from ..world import World
from .model import EXPECTABLE, Scenario, ScenarioUsageError, Verdict
from .user_protocols import check_protocol_class

__all__ = ["ScenarioFile", "ScenarioFileError", "load_scenario", "read_scenario"]

P: Final = PAGE_SIZE
#: Task names an actor may not take: the sim's root task, and the setup's outcome prefix.
RESERVED_ACTOR_NAMES: Final = ("main", "setup")
#: What an ``[expected]`` table may say (``inconclusive`` is no verdict of a protocol).
VERDICTS: Final = tuple(v.value for v in EXPECTABLE)
#: The deepest a file's tables and arrays may nest (the format itself needs 4: the file,
#: ``[setup]``, its ``ops`` array, an operation).  Deeper is refused before any use.
MAX_NESTING: Final = 16
#: Addresses lie below this (x86-64's 47-bit user address space).
ADDRESS_LIMIT: Final = 1 << 47

#: Operations on an MR that take its umem_mutex: an actor holding that lock (`lock`)
#: would wait for itself.  Op -> (what the actor does, why it waits).
_WAITS_FOR_ITS_LOCK: Final = {
    "deregister": ("deregisters", "deregistration waits for the lock's holders"),
    "fault": ("faults", "the fault takes that mutex to commit"),
}
#: The most pages one operation may name (4 GiB).
MAX_PAGES: Final = 1 << 20
#: The longest ``sleep`` (virtual seconds).
MAX_SECONDS: Final = 1e6
#: The longest name (of the scenario, a file, an actor, an MR, a subscriber...); a name
#: is printable (no NUL, no control character, no line break).
MAX_NAME: Final = 256


class ScenarioFileError(InvalidArgument):
    """A scenario file is missing, unreadable, not TOML, or says something invalid.

    `path` is the file as given; `line` the line of a TOML syntax error (else None);
    `key` the key path of the bad value (``actor[2].ops[0].op``, else None); `value` the
    value found (None when a key is missing).  ``str(error)`` is the whole message.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        key: str | None = None,
        line: int | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.key = key
        self.line = line
        self.value = value


# --- value checks -------------------------------------------------------------------------

#: A check returns None for a good value, else the problem ("expected ..., got ...").
_Check = Callable[[object], str | None]


#: What TOML calls the types `tomllib` returns, for messages to people who wrote TOML.
_TOML_TYPES: Final = {
    "str": "string",
    "int": "integer",
    "float": "float",
    "bool": "boolean",
    "list": "array",
    "dict": "table",
}


def _show(value: object, *, address: bool = False) -> str:
    kind = type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, bool):  # as TOML writes it, never as the int it subclasses
        text = "true" if value else "false"
    elif address and isinstance(value, int):
        text = f"{value:#x}"
    else:
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_TOML_TYPES.get(kind, kind)})"


def _int(
    expected: str, minimum: int, maximum: int, *, aligned: bool = False, address: bool = False
) -> _Check:
    def check(value: object) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            return f"expected {expected}, got {_show(value, address=address)}"
        if value > maximum:
            limit = f"{maximum:#x}" if address else str(maximum)
            return f"expected {expected}, at most {limit}, got {_show(value, address=address)}"
        if aligned and value % P:
            return (
                f"expected {expected}, got {value:#x}, which is misaligned "
                f"({value % P:#x} bytes into a {P:#x}-byte page)"
            )
        return None

    return check


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {_show(value)}"


def _name(value: object) -> str | None:
    # Names become task names, labels and lines of every report: one printable line
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME and value.isprintable():
        return None
    if isinstance(value, str) and len(value) > MAX_NAME:
        return (
            f"expected a name of at most {MAX_NAME} characters, got one of {len(value)}: "
            f"{_show(value)}"
        )
    return f"expected a non-empty printable string (a name), got {_show(value)}"


def _seconds(value: object) -> str | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= MAX_SECONDS
    ):
        return None
    return f"expected a number of seconds >= 0 (at most {MAX_SECONDS:g}), got {_show(value)}"


def _list(value: object) -> str | None:
    if isinstance(value, list):
        return None
    return f"expected an array of operation tables ({{ op = ..., ... }}), got {_show(value)}"


def _advice(value: object) -> str | None:
    return None if value == "dontneed" else f'expected "dontneed", got {_show(value)}'


_ADDRESS = _int(
    "a page-aligned address (an integer >= 0, a multiple of 0x1000)",
    0,
    ADDRESS_LIMIT - P,
    aligned=True,
    address=True,
)
_BYTE = _int("an address (an integer >= 0)", 0, ADDRESS_LIMIT - 1, address=True)
_PAGES = _int("a page count (an integer >= 1)", 1, MAX_PAGES)
_SIZE = _int("a page count (an integer >= 0)", 0, MAX_PAGES)

_REQUIRED: Final = object()


@attrs.frozen
class _OpSpec:
    """The keys of one operation: name -> (check, default or `_REQUIRED`)."""

    fields: Mapping[str, tuple[_Check, object]]


_R = _REQUIRED
_OPS: Final[Mapping[str, _OpSpec]] = {
    "mmap": _OpSpec(
        {
            "start": (_ADDRESS, _R),
            "pages": (_PAGES, _R),
            "writable": (_bool, True),
            "file": (_name, None),
            "pgoff": (_SIZE, 0),
            "huge": (_bool, False),
        }
    ),
    "munmap": _OpSpec({"start": (_ADDRESS, _R), "pages": (_PAGES, _R)}),
    "mremap": _OpSpec({"start": (_ADDRESS, _R), "pages": (_PAGES, _R), "to": (_ADDRESS, _R)}),
    "madvise": _OpSpec(
        {"start": (_ADDRESS, _R), "pages": (_PAGES, _R), "advice": (_advice, "dontneed")}
    ),
    "mprotect": _OpSpec({"start": (_ADDRESS, _R), "pages": (_PAGES, _R), "writable": (_bool, _R)}),
    "migrate": _OpSpec({"address": (_ADDRESS, _R)}),
    "cpu_fault": _OpSpec({"address": (_BYTE, _R), "write": (_bool, False)}),
    "populate": _OpSpec({"start": (_ADDRESS, _R), "pages": (_PAGES, _R), "write": (_bool, True)}),
    "truncate": _OpSpec({"file": (_name, _R), "pages": (_SIZE, _R)}),
    "register": _OpSpec(
        {
            "mr": (_name, _R),
            "start": (_ADDRESS, _R),
            "pages": (_PAGES, _R),
            "writable": (_bool, True),
        }
    ),
    "deregister": _OpSpec({"mr": (_name, _R)}),
    "fault": _OpSpec(
        {
            "mr": (_name, _R),
            "address": (_BYTE, _R),
            "pages": (_PAGES, 1),
            "write": (_bool, False),
        }
    ),
    "dma": _OpSpec({"mr": (_name, _R), "address": (_BYTE, _R), "write": (_bool, False)}),
    "exit": _OpSpec({}),
    "sleep": _OpSpec({"seconds": (_seconds, _R)}),
    "complete": _OpSpec({"completion": (_name, _R)}),
    "wait": _OpSpec({"completion": (_name, _R)}),
    # the mm's lifetime and a region's lock, from an actor (issue 10, item 4)
    "reap": _OpSpec({"start": (_ADDRESS, _R), "pages": (_PAGES, _R)}),
    "mmget": _OpSpec({}),
    "mmput": _OpSpec({}),
    "mmput_async": _OpSpec({}),
    "lock": _OpSpec({"mr": (_name, _R)}),
    "unlock": _OpSpec({"mr": (_name, _R)}),
    # implicit ODP MRs (issue 10, item 7; odp_async.odp.implicit)
    "register_implicit": _OpSpec(
        {
            "mr": (_name, _R),
            "child_pages": (_PAGES, 4),
            "free_in_invalidate": (_bool, False),
            "no_usecount_wait": (_bool, False),
            "plain_store": (_bool, False),
        }
    ),
    "deregister_implicit": _OpSpec({"mr": (_name, _R)}),
    "fault_implicit": _OpSpec(
        {
            "mr": (_name, _R),
            "address": (_BYTE, _R),
            "pages": (_PAGES, 1),
            "write": (_bool, False),
        }
    ),
    "dma_implicit": _OpSpec({"mr": (_name, _R), "address": (_BYTE, _R), "write": (_bool, False)}),
    # subscribers, work items and the notifier core's variants (issue 10, item 10)
    "subscribe": _OpSpec({"sub": (_name, _R), "kind": (_name, _R)}),
    "sub_fault": _OpSpec({"sub": (_name, _R), "address": (_BYTE, _R), "write": (_bool, False)}),
    "sub_access": _OpSpec({"sub": (_name, _R), "address": (_BYTE, _R), "write": (_bool, False)}),
    "unsubscribe": _OpSpec({"sub": (_name, _R)}),
    "queue_work": _OpSpec({"work": (_name, _R), "ops": (_list, _R)}),
    "flush_work": _OpSpec({"work": (_name, _R)}),
    "cancel_work": _OpSpec({"work": (_name, _R)}),
    "mm_option": _OpSpec({"option": (_name, _R), "value": (_name, _R)}),
}
#: The operations on implicit MRs: their ``mr`` names a ``register_implicit``.
_IMPLICIT_OPS: Final = ("deregister_implicit", "fault_implicit", "dma_implicit")

#: The mm options `mm_option` sets, and the values each takes.
MM_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "nonblock_failure_rule": AddressSpace.NONBLOCK_RULES,
    "release_order": AddressSpace.RELEASE_ORDERS,
    "interval_remove_wait": AddressSpace.INTERVAL_REMOVE_WAITS,
    "notifier_teardown": AddressSpace.NOTIFIER_TEARDOWNS,
}
#: The subscriber kinds that ship with the model.
SUBSCRIBER_KINDS: Final[Mapping[str, type]] = {"kvm": KvmMmu, "hmm": HmmMirror}


# --- the parsed file ----------------------------------------------------------------------


def _span(start: int, npages: int) -> str:
    return f"[{start:#x}, {start + npages * P:#x})"


@attrs.frozen
class _Op:
    """One operation: its kind, every key (defaults filled in), and where it was written."""

    kind: str
    args: Mapping[str, Any]
    key: str  # "actor[1].ops[0]" or "setup.ops[3]"

    def n(self, name: str) -> int:
        return int(self.args[name])

    def flag(self, name: str) -> bool:
        return bool(self.args[name])

    def text(self, name: str) -> str:
        return str(self.args[name])

    @property
    def range(self) -> tuple[int, int]:
        """``[start, end)`` of an operation on a range."""
        return self.n("start"), self.n("start") + self.n("pages") * P

    def describe(self) -> str:
        a = self.args
        rw = "write" if a.get("write") else "read"
        match self.kind:
            case "mmap":
                what = "writable" if a["writable"] else "read-only"
                of = f" of file {a['file']!r} from page {a['pgoff']}" if a["file"] else ""
                return f"mmap {_span(a['start'], a['pages'])} {what}{of}"
            case "munmap":
                return f"munmap {_span(a['start'], a['pages'])}"
            case "mremap":
                return f"mremap {_span(a['start'], a['pages'])} to {a['to']:#x}"
            case "madvise":
                return f"madvise(DONTNEED) {_span(a['start'], a['pages'])}"
            case "mprotect":
                what = "writable" if a["writable"] else "read-only"
                return f"mprotect {_span(a['start'], a['pages'])} {what}"
            case "migrate":
                return f"migrate the page at {a['address']:#x}"
            case "cpu_fault":
                return f"cpu_fault {a['address']:#x} {rw}"
            case "populate":
                return f"populate {_span(a['start'], a['pages'])} ({rw} cpu faults)"
            case "truncate":
                return f"truncate file {a['file']!r} to {a['pages']} pages"
            case "register":
                what = "" if a["writable"] else " read-only"
                return f"register MR {a['mr']}{what} {_span(a['start'], a['pages'])}"
            case "deregister":
                return f"deregister MR {a['mr']}"
            case "fault":
                many = f" ({a['pages']} pages)" if a["pages"] > 1 else ""
                return f"fault MR {a['mr']} at {a['address']:#x}{many} {rw}"
            case "dma":
                return f"dma via MR {a['mr']} at {a['address']:#x} {rw}"
            case "sleep":
                return f"sleep {a['seconds']} s"
            case "complete":
                return f"complete_all {a['completion']!r}"
            case "wait":
                return f"wait for {a['completion']!r}"
            case "reap":
                return f"reap {_span(a['start'], a['pages'])}"
            case "lock" | "unlock":
                return f"{self.kind} MR {a['mr']}'s umem_mutex"
            case "register_implicit":
                bugs = [k for k in ImplicitMr.OPTIONS if a[k]]
                with_ = f" with {', '.join(bugs)}" if bugs else ""
                return f"register implicit MR {a['mr']} ({a['child_pages']}-page children){with_}"
            case "deregister_implicit":
                return f"deregister implicit MR {a['mr']}"
            case "fault_implicit":
                many = f" ({a['pages']} pages)" if a["pages"] > 1 else ""
                return f"fault implicit MR {a['mr']} at {a['address']:#x}{many} {rw}"
            case "dma_implicit":
                return f"dma via implicit MR {a['mr']} at {a['address']:#x} {rw}"
            case "subscribe":
                return f"subscribe {a['sub']} ({a['kind']})"
            case "sub_fault":
                return f"fault subscriber {a['sub']} at {a['address']:#x} {rw}"
            case "sub_access":
                return f"access via subscriber {a['sub']} at {a['address']:#x} {rw}"
            case "unsubscribe":
                return f"tear subscriber {a['sub']} down"
            case "queue_work":
                steps = "; ".join(op.describe() for op in a["ops"]) or "nothing"
                return f"queue work {a['work']!r} ({steps})"
            case "flush_work":
                return f"flush_work {a['work']!r}"
            case "cancel_work":
                return f"cancel_work_sync {a['work']!r}"
            case "mm_option":
                return f"mm.{a['option']} = {a['value']!r}"
        return self.kind  # exit, mmget, mmput, mmput_async


@attrs.frozen
class _FileDecl:
    name: str
    pages: int
    hugetlb: bool


@attrs.frozen
class _Actor:
    name: str
    after: tuple[str, ...]
    ops: tuple[_Op, ...]


@attrs.frozen
class ScenarioFile:
    """A checked scenario file: its `Scenario`, and the protocols it is meant for."""

    path: str
    scenario: Scenario
    #: From ``scenario.protocols``; every protocol when the file does not say.
    protocols: tuple[str, ...]


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """The `Scenario` a TOML scenario file describes.  Raises `ScenarioFileError`."""
    return read_scenario(path).scenario


def read_scenario(
    path: str | os.PathLike[str], *, protocols: Collection[str] | None = None
) -> ScenarioFile:
    """Read and check a scenario file (see the module docstring for the format).

    `protocols`: the protocols the caller will run.  A ``module:Class`` entry of
    ``scenario.protocols`` is imported and checked (`check_protocol_class`) only if it is
    one of them (every entry when `protocols` is None); the others are checked for their
    form only, so a run of one protocol does not need the file's other modules.

    Raises `ScenarioFileError` (an `InvalidArgument`) for a missing or unreadable file,
    a TOML syntax error, or any invalid content, naming the file and where.
    """
    return _Reader(os.fspath(path), protocols).read()


# --- reading and checking -----------------------------------------------------------------

_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


class _Reader:
    """Reads one file; every method raises `ScenarioFileError` at the first problem."""

    def __init__(self, path: str, protocols: Collection[str] | None = None) -> None:
        self.path = path
        # the "module:Class" entries of scenario.protocols to import (None: all of them)
        self.imports = None if protocols is None else frozenset(protocols)

    def fail(self, key: str | None, message: str, value: object = None) -> ScenarioFileError:
        where = f"{self.path}: {key}" if key else self.path
        return ScenarioFileError(f"{where}: {message}", path=self.path, key=key, value=value)

    # --- generic shapes ---------------------------------------------------------------

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_show(value)}", value)
        return value

    def array(self, value: object, key: str, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected an array of {what}, got {_show(value)}", value)
        return value

    def keys(
        self, table: Mapping[str, Any], key: str, allowed: Sequence[str], context: str = ""
    ) -> None:
        for name in table:
            if name not in allowed:
                sub = f"{key}.{name}" if key else name
                hint = difflib.get_close_matches(name, allowed, n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                known = ", ".join(allowed) if allowed else "none"
                raise self.fail(
                    sub, f"unknown key {name!r}{context}; expected one of: {known}{maybe}", name
                )

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        name: str,
        check: _Check,
        default: object = _REQUIRED,
        what: str = "",
    ) -> Any:
        sub = f"{key}.{name}" if key else name
        if name not in table:
            if default is _REQUIRED:
                raise self.fail(sub, f"missing required key{what}")
            return default
        value = table[name]
        problem = check(value)
        if problem is not None:
            raise self.fail(sub, problem, value)
        return value

    def names(self, value: object, key: str, what: str) -> list[str]:
        items = self.array(value, key, what)
        for i, item in enumerate(items):
            problem = _name(item)
            if problem is not None:
                raise self.fail(f"{key}[{i}]", problem, item)
        return items

    # --- the file ---------------------------------------------------------------------

    def read(self) -> ScenarioFile:
        doc = self.parse()
        self.keys(doc, "", ("scenario", "setup", "actor", "expected", "script"))

        head = self.get(doc, "", "scenario", _any, what=" (the [scenario] table)")
        head = self.table(head, "scenario")
        self.keys(head, "scenario", ("name", "summary", "protocols"))
        name = self.get(head, "scenario", "name", _name)
        summary = self.get(head, "scenario", "summary", _string, "")
        protocols = self.protocols(head)

        setup = self.table(doc.get("setup", {}), "setup")
        self.keys(setup, "setup", ("files", "ops"))
        files = self.files(setup.get("files", []))
        setup_ops = self.ops(setup.get("ops", []), "setup.ops", allow_empty=True)

        actors = self.actors(doc)
        expected = self.verdicts(doc.get("expected", {}), "expected", protocols)
        script, script_expected, script_unfollowed = self.script(
            doc.get("script"), actors, protocols
        )

        _Semantics(self, files, setup_ops, actors).check()
        scenario = Scenario(
            name,
            summary,
            _body(self.path, files, setup_ops, actors),
            tuple(a.name for a in actors),
            expected,
            description=_describe(files, setup_ops, actors),
            script=script,
            needs_world=True,
            script_expected=script_expected,
            script_unfollowed=script_unfollowed,
            # The actors share state only through the world and `_Run` (tracked).
            noted_only=True,
        )
        return ScenarioFile(self.path, scenario, protocols)

    def parse(self) -> dict[str, Any]:
        try:
            raw = read_bytes(self.path)
        except UnreadableFile as e:
            reason = {
                "missing": "no such scenario file",
                "directory": "is a directory, expected a scenario file (.toml)",
            }.get(e.kind, e.reason)
            raise self.fail(None, reason) from None
        try:
            text = _text_of(raw)
        except UnicodeDecodeError as e:
            raise self.fail(None, f"not UTF-8 text (byte {e.start}); TOML is UTF-8") from None
        return self.loads(text)

    def loads(self, text: str) -> dict[str, Any]:
        """`text` parsed as TOML, at most `MAX_NESTING` deep, or `ScenarioFileError`."""
        try:
            doc = tomllib.loads(text)
        except RecursionError:
            raise self.fail(None, f"TOML nested too deep (at most {MAX_NESTING} levels)") from None
        except tomllib.TOMLDecodeError as e:
            raise self.syntax_error(e, text) from None
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            if str(e).startswith("Exceeds the limit"):  # its advice names Python's API
                limit = sys.get_int_max_str_digits()
                raise self.fail(None, f"TOML integer of more than {limit} digits") from None
            raise self.fail(None, f"TOML value error: {_printable(str(e))}") from None
        depth = _nesting(doc)
        if depth > MAX_NESTING:
            raise self.fail(None, f"TOML nested {depth} deep (at most {MAX_NESTING} levels)")
        return doc

    def syntax_error(self, e: tomllib.TOMLDecodeError, text: str) -> ScenarioFileError:
        """The error for a TOML syntax error: the file, line and column, and the source
        line quoted on a second line (non-printable characters escaped)."""
        message = str(e)
        found = _TOML_WHERE.search(message)
        if found is None:
            return self.fail(None, f"TOML syntax error: {_printable(message)}")
        line, column = int(found.group(1)), int(found.group(2))
        reason = message[: found.start()]
        lines = text.splitlines()
        text_line = lines[line - 1] if line <= len(lines) else ""
        return ScenarioFileError(
            f"{self.path}, line {line}, column {column}: TOML syntax error: "
            f"{_printable(reason)}\n    {_printable(text_line)}",
            path=self.path,
            line=line,
            value=text_line,
        )

    def protocols(self, head: Mapping[str, Any]) -> tuple[str, ...]:
        if "protocols" not in head:
            return tuple(PROTOCOLS)
        names = self.names(head["protocols"], "scenario.protocols", "protocol names")
        if not names:
            raise self.fail("scenario.protocols", "expected at least one protocol, got []", [])
        for i, p in enumerate(names):
            if p not in PROTOCOLS and ":" in p:
                module, _, qualname = p.partition(":")
                if not module or not qualname:
                    raise self.fail(
                        f"scenario.protocols[{i}]",
                        f"protocol reference {p!r} is not of the form 'module:Class'",
                        p,
                    )
                # not run now (not in `imports`): its module need not be importable
                if self.imports is None or p in self.imports:
                    try:  # your own protocol, "module:Class"
                        check_protocol_class(resolve_protocol(p), p)
                    except InvalidArgument as e:
                        raise self.fail(f"scenario.protocols[{i}]", str(e), p) from None
            elif p not in PROTOCOLS:
                raise self.fail(
                    f"scenario.protocols[{i}]",
                    f"unknown protocol {p!r}; expected one of: {', '.join(PROTOCOLS)} "
                    "or 'module:Class'",
                    p,
                )
            if p in names[:i]:
                raise self.fail(f"scenario.protocols[{i}]", f"protocol {p!r} listed twice", p)
        return tuple(names)

    def files(self, value: object) -> tuple[_FileDecl, ...]:
        out: list[_FileDecl] = []
        for i, item in enumerate(self.array(value, "setup.files", "file tables")):
            key = f"setup.files[{i}]"
            t = self.table(item, key)
            self.keys(t, key, ("name", "pages", "hugetlb"))
            decl = _FileDecl(
                self.get(t, key, "name", _name),
                self.get(t, key, "pages", _SIZE),
                self.get(t, key, "hugetlb", _bool, False),
            )
            if any(f.name == decl.name for f in out):
                raise self.fail(f"{key}.name", f"file {decl.name!r} declared twice", decl.name)
            out.append(decl)
        return tuple(out)

    def ops(self, value: object, key: str, *, allow_empty: bool = False) -> tuple[_Op, ...]:
        items = self.array(value, key, "operation tables ({ op = ..., ... })")
        if not items and not allow_empty:
            raise self.fail(key, "expected at least one operation, got []", items)
        return tuple(self.op(item, f"{key}[{i}]") for i, item in enumerate(items))

    def op(self, value: object, key: str) -> _Op:
        t = self.table(value, key)
        kind = self.get(t, key, "op", _name, what=" (which operation: " + ", ".join(_OPS) + ")")
        spec = _OPS.get(kind)
        if spec is None:
            hint = difflib.get_close_matches(kind, list(_OPS), n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.fail(
                f"{key}.op",
                f"unknown operation {kind!r}; expected one of: {', '.join(_OPS)}{maybe}",
                kind,
            )
        self.keys(t, key, ("op", *spec.fields), f" for op {kind!r}")
        args = {
            name: self.get(t, key, name, check, default, f" of op {kind!r}")
            for name, (check, default) in spec.fields.items()
        }
        if kind == "queue_work":
            args["ops"] = self.ops(args["ops"], f"{key}.ops")
        elif kind == "subscribe":
            _subscriber_class(args["kind"], lambda m: self.fail(f"{key}.kind", m, args["kind"]))
        elif kind == "mm_option":
            option, value = args["option"], args["value"]
            if option not in MM_OPTIONS:
                raise self.fail(
                    f"{key}.option",
                    f"unknown mm option {option!r}; expected one of: {', '.join(MM_OPTIONS)}",
                    option,
                )
            if value not in MM_OPTIONS[option]:
                raise self.fail(
                    f"{key}.value",
                    f"unknown value {value!r} of mm option {option!r}; expected one of: "
                    f"{', '.join(MM_OPTIONS[option])}",
                    value,
                )
        return _Op(kind, args, key)

    def actors(self, doc: Mapping[str, Any]) -> tuple[_Actor, ...]:
        if "actor" not in doc:
            raise self.fail("actor", "missing: a scenario needs at least one [[actor]] table")
        items = self.array(doc["actor"], "actor", "actor tables ([[actor]])")
        if not items:
            raise self.fail("actor", "expected at least one [[actor]] table, got []", items)
        out: list[_Actor] = []
        for i, item in enumerate(items):
            key = f"actor[{i}]"
            t = self.table(item, key)
            self.keys(t, key, ("name", "after", "ops"))
            name = self.get(t, key, "name", _name)
            if name in RESERVED_ACTOR_NAMES:
                raise self.fail(
                    f"{key}.name",
                    f"actor name {name!r} is reserved; expected another name "
                    f"(not {' or '.join(RESERVED_ACTOR_NAMES)})",
                    name,
                )
            if any(a.name == name for a in out):
                first = next(j for j, a in enumerate(out) if a.name == name)
                raise self.fail(
                    f"{key}.name",
                    f"duplicate actor name {name!r} (actor[{first}] has it); "
                    "expected a unique name",
                    name,
                )
            after = self.names(t.get("after", []), f"{key}.after", "actor names")
            if "ops" not in t:
                raise self.fail(f"{key}.ops", "missing required key (the actor's operations)")
            out.append(_Actor(name, tuple(after), self.ops(t["ops"], f"{key}.ops")))
        self.order(out)
        return tuple(out)

    def order(self, actors: Sequence[_Actor]) -> None:
        index = {a.name: i for i, a in enumerate(actors)}
        for i, a in enumerate(actors):
            for j, other in enumerate(a.after):
                key = f"actor[{i}].after[{j}]"
                if other == a.name:
                    raise self.fail(key, f"actor {a.name!r} cannot wait for itself", other)
                if other not in index:
                    raise self.fail(
                        key,
                        f"no actor named {other!r}; expected one of: {', '.join(index)}",
                        other,
                    )
                if other in a.after[:j]:
                    raise self.fail(key, f"{other!r} listed twice", other)
        # Depth-first search for a cycle; `path` is the current chain of waits.
        state: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for other in actors[index[name]].after:
                if state.get(other) == 1:
                    cycle = [*path[path.index(other) :], other]
                    start = index[cycle[0]]
                    raise self.fail(
                        f"actor[{start}].after",
                        "the 'after' order has a cycle, so these actors would wait "
                        f"forever: {' waits for '.join(cycle)}; expected no cycle",
                        cycle,
                    )
                if other not in state:
                    visit(other, [*path, other])
            state[name] = 2

        for a in actors:
            if a.name not in state:
                visit(a.name, [a.name])

    def verdicts(self, value: object, key: str, protocols: tuple[str, ...]) -> dict[str, Verdict]:
        t = self.table(value, key)
        out: dict[str, Verdict] = {}
        for p, v in t.items():
            if p not in PROTOCOLS and p not in protocols:
                # An expectation is for a protocol the file lists (a built-in name or
                # the file's own "module:Class"): those are what it may have meant.
                hint = difflib.get_close_matches(p, list(protocols), n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(
                    f"{key}.{p}",
                    f"unknown protocol {p!r}; expected one of scenario.protocols: "
                    f"{', '.join(protocols)}{maybe}",
                    p,
                )
            if p not in protocols:
                raise self.fail(
                    f"{key}.{p}",
                    f"protocol {p!r} is not in scenario.protocols "
                    f"({', '.join(protocols)}); expected one of those",
                    p,
                )
            if v not in VERDICTS:
                raise self.fail(
                    f"{key}.{p}",
                    f"unknown verdict {_show(v)}; expected one of: {', '.join(VERDICTS)}",
                    v,
                )
            out[p] = Verdict(v)
        return out

    def script(
        self, value: object, actors: Sequence[_Actor], protocols: tuple[str, ...]
    ) -> tuple[tuple[tuple[str, str | None], ...], dict[str, Verdict], frozenset[str]]:
        if value is None:
            return (), {}, frozenset()
        t = self.table(value, "script")
        self.keys(t, "script", ("steps", "expected", "unfollowed"))
        names = [a.name for a in actors]
        items = self.array(
            self.get(t, "script", "steps", _any), "script.steps", '[actor] or [actor, "until"]'
        )
        steps: list[tuple[str, str | None]] = []
        for i, item in enumerate(items):
            key = f"script.steps[{i}]"
            ok = (
                isinstance(item, list)
                and len(item) in (1, 2)
                and all(isinstance(s, str) and s for s in item)
            )
            if not ok:
                raise self.fail(
                    key,
                    f'expected [actor] or [actor, "until text"] (non-empty strings), '
                    f"got {_show(item)}",
                    item,
                )
            if item[0] not in names:
                raise self.fail(
                    f"{key}[0]",
                    f"no actor named {item[0]!r}; expected one of: {', '.join(names)}",
                    item[0],
                )
            steps.append((item[0], item[1] if len(item) == 2 else None))
        expected = self.verdicts(t.get("expected", {}), "script.expected", protocols)
        unfollowed = self.script_unfollowed(
            t.get("unfollowed", []), protocols, expected, bool(steps)
        )
        return tuple(steps), expected, unfollowed

    def script_unfollowed(
        self,
        value: object,
        protocols: tuple[str, ...],
        expected: Mapping[str, Verdict],
        steps: bool,
    ) -> frozenset[str]:
        """``[script] unfollowed``: protocols of the file under which the script cannot
        be followed (`Scenario.script_unfollowed`)."""
        key = "script.unfollowed"
        names = self.array(value, key, "protocol names")
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in protocols:
                hint = difflib.get_close_matches(str(name), list(protocols), n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(
                    f"{key}[{i}]",
                    f"expected one of the file's protocols ({', '.join(protocols)}), "
                    f"got {repr(name) if isinstance(name, str) else _show(name)}{maybe}",
                    name,
                )
            if name in names[:i]:
                raise self.fail(f"{key}[{i}]", f"{name!r} is listed twice", name)
            if name in expected:
                raise self.fail(
                    f"{key}[{i}]",
                    f"{name!r} also has a verdict in script.expected; a protocol either "
                    "follows the script (and earns a verdict) or cannot, not both",
                    name,
                )
        if names and not steps:
            raise self.fail(
                key,
                "names protocols that cannot follow the script, but script.steps is empty",
                value,
            )
        if names and set(names) >= set(protocols):
            raise self.fail(
                key,
                "every protocol of the file is listed: a script no protocol can follow shows "
                "nothing (and a mistyped until text would go unseen); list only those whose "
                "fix closes the script's window",
                value,
            )
        return frozenset(names)


def _text_of(raw: bytes) -> str:
    """A scenario file's bytes `raw` as text: UTF-8, after a UTF-8 byte-order mark if
    `raw` starts with one (Windows editors write it; TOML has no place for it, and
    `tomllib` refuses it).  Raises `UnicodeDecodeError` whose ``start`` counts the
    file's bytes, the mark's included."""
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnicodeDecodeError(e.encoding, raw, e.start + skip, e.end + skip, e.reason) from None


def _printable(text: str) -> str:
    """`text` with every non-printable character (a newline, a null byte, an escape
    sequence's ESC) written as its Python escape, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _nesting(doc: object) -> int:
    """How deeply `doc`'s tables and arrays nest (without recursing)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth) for item in items)
    return deepest


def _any(value: object) -> str | None:
    return None


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {_show(value)}"


# --- static checks across operations ------------------------------------------------------


def _merge(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _covered(merged: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in merged)


def _spans(merged: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"[{s:#x}, {e:#x})" for s, e in merged) or "nothing"


def _flat(ops: Sequence[_Op]) -> list[_Op]:
    """`ops` with the ops of every ``queue_work`` among them after it, recursively."""
    out: list[_Op] = []
    for op in ops:
        out.append(op)
        if op.kind == "queue_work":
            out.extend(_flat(op.args["ops"]))
    return out


def _shape(op: _Op) -> object:
    """What `op` does, without where it was written (to compare two ``queue_work``)."""
    return (
        op.kind,
        tuple(
            (k, tuple(_shape(o) for o in v) if k == "ops" else v)
            for k, v in sorted(op.args.items())
        ),
    )


def _subscriber_class(kind: str, fail: Callable[[str], Exception]) -> type:
    """The class a ``subscribe`` op's `kind` names: a built-in kind, or ``module:Class``
    imported, with the three callbacks.  Raises ``fail(message)``."""
    if kind in SUBSCRIBER_KINDS:
        return SUBSCRIBER_KINDS[kind]
    module, _, qualname = kind.partition(":")
    if not module or not qualname:
        raise fail(
            f"unknown subscriber kind {kind!r}; expected one of: "
            f"{', '.join(SUBSCRIBER_KINDS)} or 'module:Class'"
        )
    try:
        found: object = importlib.import_module(module)
    except ImportError as e:
        if not _is_missing(module, e):
            raise fail(
                f"module {module!r} of subscriber {kind!r} was found but failed to import: {e}"
            ) from None
        raise fail(
            f"cannot import module {module!r} of subscriber {kind!r}: {e} "
            "(is it on sys.path / PYTHONPATH?)"
        ) from None
    except Exception as e:
        raise fail(
            f"importing module {module!r} of subscriber {kind!r} raised {type(e).__name__}: {e}"
        ) from None
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise fail(f"module {module!r} has no {qualname!r} (subscriber {kind!r})")
    if not isinstance(found, type):
        raise fail(
            f"subscriber {kind!r} names {found!r}, which is not a class with "
            "invalidate_range_start, invalidate_range_end and release"
        )
    problem = subscription_problem(found)
    if problem is not None:
        raise fail(f"subscriber class {found.__qualname__} ({kind!r}) {problem}")
    try:
        inspect.signature(found).bind(None, None, "name")
    except TypeError:
        raise fail(
            f"subscriber class {found.__qualname__} ({kind!r}) cannot be built as "
            f"Class(mm, checker, name): its constructor is {found.__qualname__}"
            f"{inspect.signature(found)}"
        ) from None
    except ValueError:  # no signature to read (a builtin): leave it to the call
        pass
    return found


def _is_missing(module: str, e: ImportError) -> bool:
    """Whether `e` says `module` itself (or a package above it) is not there, rather
    than that the module was found and one of *its* imports failed."""
    missing = e.name if isinstance(e, ModuleNotFoundError) else None
    return missing is not None and (module == missing or module.startswith(missing + "."))


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _inside(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether `a` lies inside `b`."""
    return b[0] <= a[0] and a[1] <= b[1]


def _span_of(rng: tuple[int, int]) -> str:
    return f"[{rng[0]:#x}, {rng[1]:#x})"


def _unmap(
    mapped: Mapping[str, tuple[int, int]], gone: tuple[int, int]
) -> dict[str, tuple[int, int]]:
    """`mapped` with `gone` taken out (what is left of a mapping split in two is kept under
    its key, and a second piece under the key with ``'`` added)."""
    out: dict[str, tuple[int, int]] = {}
    for key, (start, end) in mapped.items():
        pieces = [(start, min(end, gone[0])), (max(start, gone[1]), end)]
        kept = [p for p in pieces if p[0] < p[1]]
        for i, piece in enumerate(kept):
            out[key + "'" * i] = piece
    return out


def _maps(op: _Op) -> tuple[int, int] | None:
    """The range an operation makes mapped, if any."""
    if op.kind == "mmap":
        return op.range
    if op.kind == "mremap":
        return op.n("to"), op.n("to") + op.n("pages") * P
    return None


@attrs.define
class _Semantics:
    """The checks that look across operations (ranges, MRs, files, completions)."""

    reader: _Reader
    files: tuple[_FileDecl, ...]
    setup: tuple[_Op, ...]
    actors: tuple[_Actor, ...]

    def check(self) -> None:
        actor_ops = _flat([op for a in self.actors for op in a.ops])
        everything = [*_flat(self.setup), *actor_ops]
        self.subs_and_works(everything)
        completed = {op.text("completion") for op in everything if op.kind == "complete"}
        mapped_by_all = [r for op in everything if (r := _maps(op)) is not None]
        mapped_all = _merge(mapped_by_all)
        registers_all = [op for op in everything if op.kind in ("register", "register_implicit")]

        left_mapped = self.setup_in_order()
        self.actor_clashes(actor_ops, left_mapped)
        for i, op in enumerate(self.setup):
            earlier = self.setup[:i]
            mapped = _merge([r for o in earlier if (r := _maps(o)) is not None])
            registers = [o for o in earlier if o.kind in ("register", "register_implicit")]
            if op.kind == "wait":
                raise self.reader.fail(
                    f"{op.key}.op",
                    "a wait in the setup would wait forever (the setup runs alone, before "
                    "the actors); expected it in an actor",
                    op.kind,
                )
            self.op(op, mapped, "the earlier setup operations", registers, "before it in setup")
            for inner in _flat(op.args["ops"]) if op.kind == "queue_work" else ():
                self.op(inner, mapped, "the earlier setup operations", registers, "in setup")
        where = "the setup and the mmap/mremap operations"
        for op in actor_ops:
            self.op(op, mapped_all, where, registers_all, "in the setup or any actor")
            if op.kind == "wait" and op.text("completion") not in completed:
                name = op.text("completion")
                known = ", ".join(sorted(completed)) or "none"
                raise self.reader.fail(
                    f"{op.key}.completion",
                    f"no operation completes {name!r}, so this wait would never end; "
                    f"expected a completion some 'complete' op names ({known})",
                    name,
                )
        self.locks()

    def tasks(self) -> list[tuple[str, tuple[_Op, ...]]]:
        """Each task the file's operations run in, with its operations in program order:
        the setup (the main task), each actor, and each work item (its kworker runs the
        ``queue_work``'s ops as one function; one entry per name: they list the same
        ops)."""
        out: list[tuple[str, tuple[_Op, ...]]] = [("the setup", self.setup)]
        out.extend((f"actor {a.name!r}", a.ops) for a in self.actors)
        works: dict[str, tuple[_Op, ...]] = {}
        for op in _flat([*self.setup, *(o for a in self.actors for o in a.ops)]):
            if op.kind == "queue_work":
                works.setdefault(op.text("work"), op.args["ops"])
        out.extend((f"work {name!r}", ops) for name, ops in works.items())
        return out

    def locks(self) -> None:
        """The file's own ``lock``/``unlock`` steps, per task in program order (a mutex
        is released by the task that took it, and is not reentrant): no ``unlock`` of a
        lock the task does not hold at that point, no ``lock`` of one it already holds
        (it would wait for itself forever), no ``deregister`` of an MR it holds (the
        deregistration drains the holders: it would wait for itself), no ``fault`` on an
        MR it holds (the fault commits under that mutex, under every protocol), and none
        still held when the task ends.  (A ``cpu_fault`` takes no region's mutex.)"""
        fail = self.reader.fail
        tasks = self.tasks()
        lockers: dict[str, list[tuple[str, _Op]]] = {}  # MR -> (task, lock op)
        for task, ops in tasks:
            for op in ops:
                if op.kind == "lock":
                    lockers.setdefault(op.text("mr"), []).append((task, op))
        left: list[tuple[str, str, _Op]] = []  # (task, MR, lock op) held at the end
        for task, ops in tasks:
            held: dict[str, _Op] = {}  # MR name -> the lock op that took it
            for op in ops:
                waits = _WAITS_FOR_ITS_LOCK.get(op.kind)
                if waits is not None and op.text("mr") in held:
                    name = op.text("mr")
                    raise fail(
                        f"{op.key}.op",
                        f"{task} {waits[0]} MR {name} while it holds its umem_mutex (since "
                        f"{held[name].key}): {waits[1]}, so the task would wait for itself "
                        "forever; expected the unlock before it",
                        op.kind,
                    )
                if op.kind not in ("lock", "unlock"):
                    continue
                name = op.text("mr")
                if op.kind == "lock" and name in held:
                    raise fail(
                        f"{op.key}.op",
                        f"{task} locks MR {name}'s umem_mutex again, holding it since "
                        f"{held[name].key}: the mutex is not reentrant, so the task would "
                        "wait for itself forever; expected an unlock between the two",
                        op.kind,
                    )
                if op.kind == "lock":
                    held[name] = op
                    continue
                if held.pop(name, None) is not None:
                    continue
                others = [(t, o) for t, o in lockers.get(name, ()) if t != task]
                if others:
                    t, o = others[0]
                    why = (
                        f"{t} locks it ({o.key}), and only the task that took a mutex "
                        f"releases it; expected the unlock in {t}, after its lock"
                    )
                else:
                    why = f"expected a lock of MR {name} before it in {task}"
                raise fail(
                    f"{op.key}.op",
                    f"{task} unlocks MR {name}'s umem_mutex, which it does not hold at this "
                    f"point; {why}",
                    op.kind,
                )
            left.extend((task, name, op) for name, op in held.items())
        # after every task's unlocks: one in another task says more (it names the lock)
        for task, name, op in left:
            raise fail(
                f"{op.key}.op",
                f"{task} locks MR {name}'s umem_mutex here and never unlocks it, so it "
                f"would still hold it when it ends; expected an unlock later in {task}",
                op.kind,
            )

    def setup_in_order(self) -> dict[str, tuple[int, int]]:
        """The rules the model enforces at run time, checked along the setup (its main
        task runs its operations in order, alone): no ``mmap`` or ``mremap`` onto a
        mapping, no MR name registered while it is registered, no ``deregister`` of an MR
        not registered at that point, one ``exit``.  Returns what the setup leaves mapped
        (the key of the op that mapped each range -> the range)."""
        fail = self.reader.fail
        mapped: dict[str, tuple[int, int]] = {}  # key of the op that mapped it -> range
        live: dict[str, _Op] = {}  # MR name -> the register op it is registered by
        gone: dict[str, _Op] = {}  # MR name -> the deregister op that released it
        exited: _Op | None = None
        for op in self.setup:
            if exited is not None and op.kind not in ("sleep", "complete", "mm_option"):
                raise fail(
                    f"{op.key}.op",
                    f"{op.describe()}: the process exited at {exited.key}; expected the "
                    "exit as the setup's last operation on the process",
                    op.kind,
                )
            target = _maps(op)
            if target is not None:
                source = op.range if op.kind == "mremap" else None
                for key, rng in mapped.items():
                    if _overlaps(rng, target) and not (source and _inside(target, source)):
                        raise fail(
                            f"{op.key}.{'to' if op.kind == 'mremap' else 'start'}",
                            f"{op.describe()}: {_span_of(target)} overlaps the mapping "
                            f"{_span_of(rng)} that {key} made; expected an unmapped range "
                            "(munmap it first)",
                            target[0],
                        )
                if source is not None:
                    mapped = _unmap(mapped, source)
                mapped[op.key] = target
            elif op.kind == "munmap":
                mapped = _unmap(mapped, op.range)
            elif op.kind in ("register", "register_implicit"):
                name = op.text("mr")
                if name in live:
                    raise fail(
                        f"{op.key}.mr",
                        f"MR {name!r} is registered twice: {live[name].key} registered it "
                        "and no deregister came between; expected a name of its own",
                        name,
                    )
                live[name] = op
                gone.pop(name, None)
            elif op.kind in ("deregister", "deregister_implicit"):
                name = op.text("mr")
                if name in gone:
                    raise fail(
                        f"{op.key}.mr",
                        f"MR {name!r} is deregistered twice: {gone[name].key} deregistered "
                        "it already; expected one deregister per register",
                        name,
                    )
                if name in live:
                    gone[name] = op
                    del live[name]
            elif op.kind == "exit":
                exited = op
        return {} if exited is not None else mapped

    def actor_clashes(
        self, actor_ops: Sequence[_Op], left_mapped: Mapping[str, tuple[int, int]]
    ) -> None:
        """What the model refuses in every schedule where no other actor intervenes: an
        actor's ``mmap``/``mremap`` onto a range the setup maps or another actor maps,
        and an actor's ``register`` of an MR name the setup leaves registered or another
        actor registers, unless some actor unmaps (deregisters) it, which could come
        first.  One name for a plain and an implicit MR is refused anywhere."""
        fail = self.reader.fail
        everything = [*_flat(self.setup), *actor_ops]
        plain = {op.text("mr"): op for op in everything if op.kind == "register"}
        for op in everything:
            if op.kind == "register_implicit" and op.text("mr") in plain:
                name = op.text("mr")
                raise fail(
                    f"{op.key}.mr",
                    f"MR {name!r} is registered both as a plain MR ({plain[name].key}) and "
                    "as an implicit one; expected a name of its own for each",
                    name,
                )
        unmaps = [op.range for op in actor_ops if op.kind in ("munmap", "mremap")]
        exits = any(op.kind == "exit" for op in actor_ops)
        seen_maps: list[tuple[str, tuple[int, int]]] = list(left_mapped.items())
        for op in actor_ops:
            target = _maps(op)
            if target is None:
                continue
            source = op.range if op.kind == "mremap" else None
            for other, rng in seen_maps:
                clash = (max(rng[0], target[0]), min(rng[1], target[1]))
                if clash[0] >= clash[1] or (source and _inside(clash, source)):
                    continue
                if exits or any(_overlaps(u, clash) for u in unmaps):
                    continue  # an actor may unmap it first: schedule-dependent
                raise fail(
                    f"{op.key}.{'to' if op.kind == 'mremap' else 'start'}",
                    f"{op.describe()}: {_span_of(target)} overlaps the mapping "
                    f"{_span_of(rng)} that {other.rstrip(chr(39))} makes, and no actor "
                    "unmaps it; "
                    "expected a range nothing else maps",
                    target[0],
                )
            seen_maps.append((op.key, target))
        for kind in ("register", "register_implicit"):
            setup_live: dict[str, _Op] = {}
            for op in self.setup:
                if op.kind == kind:
                    setup_live[op.text("mr")] = op
                elif op.kind == kind.replace("register", "deregister"):
                    setup_live.pop(op.text("mr"), None)
            released = {
                op.text("mr")
                for op in actor_ops
                if op.kind == kind.replace("register", "deregister")
            }
            seen: dict[str, _Op] = dict(setup_live)
            for op in actor_ops:
                if op.kind != kind:
                    continue
                name = op.text("mr")
                first = seen.setdefault(name, op)
                if first is not op and name not in released:
                    raise fail(
                        f"{op.key}.mr",
                        f"MR {name!r} is registered twice: {first.key} registers it too "
                        "and no actor deregisters it; expected a name of its own",
                        name,
                    )

    def op(
        self,
        op: _Op,
        mapped: Sequence[tuple[int, int]],
        mapped_by: str,
        registers: Sequence[_Op],
        registered_where: str,
    ) -> None:
        fail = self.reader.fail
        files = {f.name: f for f in self.files}
        if "file" in op.args and op.args["file"] is not None:
            name = op.text("file")
            if name not in files:
                known = ", ".join(files) or "none declared"
                raise fail(
                    f"{op.key}.file",
                    f"no file named {name!r} in setup.files; expected one of: {known}",
                    name,
                )
            if op.kind == "mmap" and op.n("pgoff") + op.n("pages") > files[name].pages:
                raise fail(
                    f"{op.key}.pages",
                    f"mmap of file {name!r} pages [{op.n('pgoff')}, "
                    f"{op.n('pgoff') + op.n('pages')}) is past its {files[name].pages} pages",
                    op.n("pages"),
                )
        if op.kind == "mmap" and op.flag("huge"):
            start, end = op.range
            if (
                op.args["file"] is not None
                or (start // P) % HPAGE_PAGES
                or op.n("pages") % HPAGE_PAGES
            ):
                raise fail(
                    f"{op.key}.huge",
                    f"{op.describe()}: a huge mapping must be anonymous and aligned to "
                    f"{HPAGE_PAGES} pages; expected huge = false or an aligned anonymous range",
                    True,
                )
        if op.kind in ("munmap", "mremap", "madvise", "mprotect", "populate", "register", "reap"):
            start, end = op.range
            if not _covered(mapped, start, end):
                raise fail(
                    f"{op.key}.start",
                    f"{op.describe()}: the range {_span(start, op.n('pages'))} is not inside "
                    f"the mappings of {mapped_by} ({_spans(mapped)}); expected a mapped range",
                    start,
                )
        if op.kind in ("migrate", "cpu_fault"):
            page = op.n("address") - op.n("address") % P
            if not _covered(mapped, page, page + P):
                raise fail(
                    f"{op.key}.address",
                    f"{op.describe()}: {op.n('address'):#x} is not inside the mappings of "
                    f"{mapped_by} ({_spans(mapped)}); expected a mapped address",
                    op.n("address"),
                )
        if op.kind in _IMPLICIT_OPS:
            self.implicit_mr(op, registers, registered_where)
        elif "mr" in op.args and op.kind not in ("register", "register_implicit"):
            self.mr(op, registers, registered_where)

    def implicit_mr(self, op: _Op, registers: Sequence[_Op], registered_where: str) -> None:
        name = op.text("mr")
        known = [r.text("mr") for r in registers if r.kind == "register_implicit"]
        if name not in known:
            plain = op.kind.removesuffix("_implicit")
            if any(r.kind == "register" and r.text("mr") == name for r in registers):
                raise self.reader.fail(
                    f"{op.key}.op",
                    f"MR {name!r} is registered with 'register', not 'register_implicit'; "
                    f"expected {plain!r} for it",
                    op.kind,
                )
            listed = ", ".join(dict.fromkeys(known)) or "none"
            raise self.reader.fail(
                f"{op.key}.mr",
                f"no 'register_implicit' op {registered_where} registers implicit MR "
                f"{name!r}; expected one of the implicit MRs ({listed})",
                name,
            )

    def subs_and_works(self, everything: Sequence[_Op]) -> None:
        """Every subscriber an op names is subscribed by some ``subscribe`` (with the
        method the op calls); every work item flushed or cancelled is queued somewhere,
        and every ``queue_work`` of one name lists the same ops."""
        fail = self.reader.fail
        kinds: dict[str, str] = {}
        subscribed: dict[str, _Op] = {}
        for op in everything:
            if op.kind == "subscribe":
                name = op.text("sub")
                first = subscribed.setdefault(name, op)
                if first is not op:
                    # one subscriber object per name: a second would orphan the first
                    raise fail(
                        f"{op.key}.sub",
                        f"subscriber {name!r} is subscribed twice (first at {first.key}); "
                        "expected one 'subscribe' per name",
                        name,
                    )
                kinds[name] = op.text("kind")
        works: dict[str, _Op] = {}
        for op in everything:
            if op.kind == "queue_work":
                first = works.setdefault(op.text("work"), op)
                if _shape(first) != _shape(op):
                    raise fail(
                        f"{op.key}.ops",
                        f"work {op.text('work')!r} is queued with other ops at {first.key}; "
                        "expected the same ops (one work item runs one function)",
                        op.text("work"),
                    )
        for op in everything:
            if op.kind in ("sub_fault", "sub_access", "unsubscribe"):
                name = op.text("sub")
                if name not in kinds:
                    known = ", ".join(kinds) or "none"
                    raise fail(
                        f"{op.key}.sub",
                        f"no 'subscribe' op subscribes {name!r}; expected one of the "
                        f"subscribed names ({known})",
                        name,
                    )
                method = {"sub_fault": "fault", "sub_access": "access"}.get(op.kind)
                cls = _subscriber_class(kinds[name], InvalidArgument)  # checked when read
                if method is not None and not callable(getattr(cls, method, None)):
                    raise fail(
                        f"{op.key}.op",
                        f"subscriber {name!r} ({kinds[name]}) has no {method}() method; "
                        f"expected a subscriber class with an async {method}(address, write=)",
                        op.kind,
                    )
            if op.kind in ("flush_work", "cancel_work") and op.text("work") not in works:
                known = ", ".join(works) or "none"
                raise fail(
                    f"{op.key}.work",
                    f"no 'queue_work' op queues work {op.text('work')!r}; expected one of "
                    f"the queued work items ({known})",
                    op.text("work"),
                )

    def mr(self, op: _Op, registers: Sequence[_Op], registered_where: str) -> None:
        fail = self.reader.fail
        name = op.text("mr")
        mine = [r for r in registers if r.kind == "register" and r.text("mr") == name]
        if not mine and any(
            r.kind == "register_implicit" and r.text("mr") == name for r in registers
        ):
            twin = f"{op.kind}_implicit"
            expected = (
                f"expected {twin!r} for it"
                if twin in _IMPLICIT_OPS
                else f"{op.kind!r} takes an MR registered with 'register'"
            )
            raise fail(f"{op.key}.op", f"MR {name!r} is an implicit MR; {expected}", op.kind)
        if not mine:
            known = (
                ", ".join(dict.fromkeys(r.text("mr") for r in registers if r.kind == "register"))
                or "none"
            )
            raise fail(
                f"{op.key}.mr",
                f"no 'register' op {registered_where} registers MR {name!r}; "
                f"expected one of the registered MRs ({known})",
                name,
            )
        if op.kind in ("deregister", "lock", "unlock"):
            return
        address = op.n("address")
        page = address - address % P
        end = page + (op.n("pages") if op.kind == "fault" else 1) * P
        if not any(r.range[0] <= page and end <= r.range[1] for r in mine):
            spans = ", ".join(_span(r.n("start"), r.n("pages")) for r in mine)
            raise fail(
                f"{op.key}.address",
                f"{op.describe()}: [{page:#x}, {end:#x}) is outside MR {name} ({spans}); "
                "expected an address inside the MR",
                address,
            )
        if op.kind == "fault" and op.flag("write") and not any(r.flag("writable") for r in mine):
            raise fail(
                f"{op.key}.write",
                f"a write fault on MR {name}, which is registered read-only; "
                "expected write = false",
                True,
            )


# --- the body -----------------------------------------------------------------------------


def _lock_key(op: _Op) -> str:
    """A ``lock``/``unlock``'s task (its op list, ``actor[1]`` or a work item's) and MR:
    the reader pairs each unlock with its own task's lock."""
    return f"{op.key.rsplit('.ops', 1)[0]}/{op.text('mr')}"


@tracked
@attrs.define(eq=False)
class _Run:
    """One run's state.  Invariant: `mrs` holds the last registration of each name, which
    stays there after its deregistration.  A later ``fault`` on it is the device's fault
    on a revoked key, dropped (``failed``: `UContext.device_fault`), and a later ``dma``
    fails as the device's would.  A ``lock`` is a driver path that looked the MR up and
    holds it while it holds its ``umem_mutex`` (as the device's fault does, under srcu:
    `Umem.fault_enter`, which deregistration drains): on an MR deregistered or being
    deregistered it is dropped (``dropped``), and so is its task's matching ``unlock``;
    so the file's own late lock is never charged to the protocol as a use-after-release."""

    path: str
    world: World
    files: dict[str, File]
    mrs: TrackedDict[str, Umem] = attrs.field(factory=TrackedDict)
    imrs: TrackedDict[str, ImplicitMr] = attrs.field(factory=TrackedDict)
    completions: TrackedDict[str, Completion] = attrs.field(factory=TrackedDict)
    out: TrackedDict[str, Any] = attrs.field(factory=TrackedDict)
    subs: TrackedDict[str, Any] = attrs.field(factory=TrackedDict)
    works: TrackedDict[str, WorkItem] = attrs.field(factory=TrackedDict)
    #: ``"<task's op list>/<MR>"`` of each lock dropped and not yet unlocked.
    dropped_locks: TrackedDict[str, bool] = attrs.field(factory=TrackedDict)

    def sub(self, op: _Op) -> Any:
        sub = self.subs.get(op.text("sub"))
        if sub is None:
            raise ScenarioUsageError(
                f"{self.path}: {op.key}: {op.describe()} ran before any subscribe of "
                f"{op.text('sub')!r} did; expected an 'after' that orders them"
            )
        return sub

    def work(self, op: _Op) -> WorkItem:
        name = op.text("work")
        item = self.works.get(name)
        if item is None:
            ops: tuple[_Op, ...] = op.args.get("ops", ())

            async def run_work() -> None:
                for i, inner in enumerate(ops):
                    self.out[f"work {name}.{i}"] = await self.op(inner)

            item = self.works[name] = WorkItem(name, run_work)
        return item

    def mr(self, op: _Op) -> Umem:
        umem = self.mrs.get(op.text("mr"))
        if umem is None:
            raise ScenarioUsageError(
                f"{self.path}: {op.key}: {op.describe()} ran before any register of MR "
                f"{op.text('mr')} did; expected an 'after' that orders them"
            )
        return umem

    def imr(self, op: _Op) -> ImplicitMr:
        imr = self.imrs.get(op.text("mr"))
        if imr is None:
            raise ScenarioUsageError(
                f"{self.path}: {op.key}: {op.describe()} ran before any register_implicit "
                f"of MR {op.text('mr')} did; expected an 'after' that orders them"
            )
        return imr

    def completion(self, name: str) -> Completion:
        c = self.completions.get(name)
        if c is None:
            c = self.completions[name] = Completion(name)
        return c

    async def op(self, op: _Op) -> str:
        """Run one operation, as the Python scenarios call the world: nothing is caught
        but what they catch (a `DmaError`), except the file's own mistakes: an
        `InvalidArgument` the model raises for the operation itself, before any code under
        test (a protocol, a subscriber) ran in between, becomes a `ScenarioUsageError`
        naming the file, the operation and the model's refusal; so does a
        ``refcount-underflow`` a setup's `mmput` makes (a put without a reference)."""
        # a put in the setup runs no code under test before it counts (the release it may
        # start does, so only the put's own refcount-underflow is the file's mistake)
        setup = op.key.startswith("setup.") and op.kind in ("mmput", "mmput_async")
        before = len(self.world.checker.violations) if setup else 0
        try:
            done = await self.apply(op)
        except ScenarioUsageError:
            raise
        except InvalidArgument as e:
            if not _refused_by_model(e):
                raise  # from the code under test: its error, the run's outcome
            hint = (
                "expected a setup the model accepts"
                if op.key.startswith("setup.")
                else "expected an operation valid in every schedule (if another actor's "
                "operation makes it valid, order the two with 'after')"
            )
            raise ScenarioUsageError(
                f"{self.path}: {op.key}: {op.describe()}: the model refused it "
                f"({_printable(str(e))}); {hint}"
            ) from None
        found = self.world.checker.violations[before:] if setup else ()
        for v in found:
            if v.kind != "refcount-underflow":
                continue
            raise ScenarioUsageError(
                f"{self.path}: {op.key}: {op.describe()}: the model refused it "
                f"({v.kind}: {_printable(v.detail)}); expected a setup the model accepts"
            )
        return done

    async def apply(self, op: _Op) -> str:
        """`op` itself (see `op`)."""
        w, a = self.world, op.args
        match op.kind:
            case "mmap":
                file = self.files[a["file"]] if a["file"] is not None else None
                await w.mm.mmap(
                    a["start"],
                    a["pages"] * P,
                    writable=a["writable"],
                    file=file,
                    pgoff=a["pgoff"],
                    huge=a["huge"],
                )
            case "munmap":
                await w.mm.munmap(a["start"], a["pages"] * P)
            case "mremap":
                await w.mm.mremap(a["start"], a["pages"] * P, a["to"])
            case "madvise":
                await w.mm.madvise_dontneed(a["start"], a["pages"] * P)
            case "mprotect":
                await w.mm.mprotect(a["start"], a["pages"] * P, writable=a["writable"])
            case "migrate":
                return "migrated" if await w.mm.migrate(a["address"]) else "busy"
            case "cpu_fault":
                await w.mm.cpu_fault(a["address"], write=a["write"])
            case "populate":
                for i in range(op.n("pages")):
                    await w.mm.cpu_fault(a["start"] + i * P, write=a["write"])
            case "truncate":
                await self.files[a["file"]].truncate(a["pages"])
            case "register":
                self.mrs[a["mr"]] = await w.ctx.register_mr(
                    a["start"], a["pages"] * P, writable=a["writable"], name=a["mr"]
                )
            case "deregister":
                await w.ctx.deregister_mr(self.mr(op))
            case "fault":
                # the device's fault on the MR's key: dropped once the MR is deregistered
                # (or being deregistered), never a use of a stale pointer
                outcome = await w.ctx.device_fault(
                    self.mr(op), a["address"], npages=a["pages"], write=a["write"]
                )
                return outcome.value
            case "dma":
                umem = self.mr(op)
                try:
                    await w.device.dma(umem.table, a["address"], write=a["write"])
                except DmaError as e:
                    return f"error: {e}"
            case "exit":
                await w.mm.exit()
            case "sleep":
                await rt.sleep(a["seconds"])
            case "complete":
                self.completion(a["completion"]).complete_all()
            case "wait":
                await self.completion(a["completion"]).wait()
            case "reap":
                return "reaped" if await w.mm.reap(a["start"], a["pages"] * P) else "refused"
            case "mmget":
                w.mm.mmget()
            case "mmput":
                await w.mm.mmput()
            case "mmput_async":
                w.mm.mmput_async()
            case "lock":
                umem = self.mr(op)
                if not umem.fault_enter():
                    self.dropped_locks[_lock_key(op)] = True
                    return "dropped"
                try:
                    await umem.mutex.acquire()
                except BaseException:
                    umem.fault_exit()
                    raise
            case "unlock":
                # the reader saw the task's own lock of this name, and a name cannot be
                # registered again while its MR is held (deregister drains the holders)
                if self.dropped_locks.pop(_lock_key(op), False):
                    return "dropped"
                umem = self.mr(op)
                umem.mutex.release()
                umem.fault_exit()
            case "register_implicit":
                options = {k: a[k] for k in ImplicitMr.OPTIONS}
                imr = ImplicitMr(
                    w.mm, w.checker, w.workqueue, a["mr"], child_pages=a["child_pages"], **options
                )
                self.imrs[a["mr"]] = imr
                await imr.register()
            case "deregister_implicit":
                await self.imr(op).deregister()
            case "fault_implicit":
                imr = self.imr(op)
                return (await imr.fault(a["address"], npages=a["pages"], write=a["write"])).value
            case "dma_implicit":
                return await self.imr(op).dma(a["address"], write=a["write"])
            case "subscribe":
                cls = _subscriber_class(a["kind"], InvalidArgument)
                try:
                    built = cls(w.mm, w.checker, a["sub"])
                except Exception as e:
                    raise ScenarioUsageError(
                        f"{self.path}: {op.key}.kind: subscriber class {cls.__qualname__} "
                        f"({a['kind']!r}) cannot be built: {cls.__qualname__}(mm, checker, "
                        f"{a['sub']!r}) raised {type(e).__name__}: {_printable(str(e))}"
                    ) from None
                sub = self.subs[a["sub"]] = built
                await w.mm.register_notifier(sub)
            case "sub_fault":
                return str(await self.sub(op).fault(a["address"], write=a["write"]))
            case "sub_access":
                return "hit" if self.sub(op).access(a["address"], write=a["write"]) else "miss"
            case "unsubscribe":
                await w.mm.teardown_notifier(self.sub(op), _nothing)
            case "queue_work":
                return "queued" if w.workqueue.queue_work(self.work(op)) else "pending"
            case "flush_work":
                return "flushed" if await w.workqueue.flush_work(self.work(op)) else "idle"
            case "cancel_work":
                return "cancelled" if await w.workqueue.cancel_work_sync(self.work(op)) else "idle"
            case "mm_option":
                setattr(w.mm, a["option"], a["value"])
            case _:  # pragma: no cover - the reader admits only the kinds above
                raise AssertionError(op.kind)
        return "ok"

    async def actor(
        self, actor: _Actor, gates: Sequence[Completion], done: Completion | None
    ) -> None:
        for gate in gates:
            await gate.wait()
        for i, op in enumerate(actor.ops):
            self.out[f"{actor.name}.{i}"] = await self.op(op)
        if done is not None:
            done.complete_all()


def _body(
    path: str,
    files: tuple[_FileDecl, ...],
    setup: tuple[_Op, ...],
    actors: tuple[_Actor, ...],
) -> Callable[[World], Any]:
    waited_on = {name for a in actors for name in a.after}

    async def body(w: World) -> dict[str, Any]:
        run = _Run(path, w, {f.name: w.file(f.name, f.pages, hugetlb=f.hugetlb) for f in files})
        for i, op in enumerate(setup):
            run.out[f"setup.{i}"] = await run.op(op)
        # Only actors someone waits for get a completion, as in the Python scenarios: a
        # complete_all() is a state change the sim notes in the step's footprint.
        done = {
            a.name: Completion(f"{a.name} done", gate=True) for a in actors if a.name in waited_on
        }
        async with rt.task_group() as tg:
            for a in actors:
                gates = [done[name] for name in a.after]
                tg.start_soon(run.actor, a, gates, done.get(a.name), name=a.name)
        return dict(run.out)

    return body


async def _nothing() -> None:
    pass


#: The modules of the model whose `InvalidArgument` refuses an operation the file asked
#: for (not code under test: the protocols and subscribers are not among them).
_MODEL_MODULES: Final = frozenset(
    {
        "odp_async.scenarios.files",
        "odp_async.mm",
        "odp_async.odp.ucontext",
        "odp_async.odp.umem",
        "odp_async.odp.implicit",
        "odp_async.workqueue",
        "odp_async.device",
        "odp_async.world",
        "odp_async.intervals",
        "odp_async.addr",
    }
)


def _refused_by_model(error: BaseException) -> bool:
    """Whether every frame from the operation down to where `error` was raised is the
    model's own (`_MODEL_MODULES`): the model refused the operation before any protocol
    or subscriber code ran in between (that code's `InvalidArgument` is its error)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") not in _MODEL_MODULES:
            return False
        tb = tb.tb_next
    return True


# --- the description ----------------------------------------------------------------------


def _describe(
    files: tuple[_FileDecl, ...], setup: tuple[_Op, ...], actors: tuple[_Actor, ...]
) -> str:
    lines = ["setup (the main task, in order):"]
    for f in files:
        huge = ", hugetlb" if f.hugetlb else ""
        lines.append(f"  file {f.name!r}: {f.pages} pages{huge}")
    lines.extend(_numbered("  ", setup))
    if not files and not setup:
        lines.append("  (nothing)")
    lines.append("actors (started in this order):")
    for a in actors:
        after = f" (after {', '.join(a.after)})" if a.after else ""
        lines.append(f"  {a.name}{after}:")
        lines.extend(_numbered("    ", a.ops))
    # The expected verdicts and the script are fields of the scenario (`odp-async show`
    # prints them once, from there), not part of the description.
    return "\n".join(lines)


def _numbered(indent: str, ops: tuple[_Op, ...]) -> list[str]:
    """``0. op`` lines, numbers right-aligned so the ops start in one column (`` 9.``,
    ``10.``)."""
    width = len(str(len(ops) - 1)) if ops else 1
    return [f"{indent}{i:>{width}}. {op.describe()}" for i, op in enumerate(ops)]
