"""Footprints: what one step of a task touches, for partial-order reduction.

Contract
    A `Footprint` names the shared resources a step reads and writes (any hashable:
    a primitive, ``("umem", "B")``, ``"x"``).  Code declares the footprint of the step
    that follows a checkpoint by passing it as the label:
    ``await checkpoint(Footprint.write("x"))``.  Under the sim, acquires, releases, wakes
    and completions add their primitive to the footprint of the step they happen in
    (`note`); a primitive's acquire also declares that primitive, but only for a program
    that promised every shared access is noted (`declared_footprint`'s `noted_only`).  A
    step whose label declares nothing (a string, a tuple, None, and without that promise
    a primitive) has an *unknown* footprint, which conflicts with every other step:
    reduction is only ever applied where footprints were declared.

    `note` records a write; `note_read` a read (as a `ReadOf` marker among the noted
    resources, which `with_noted_reads` turns back into a read: the choosers apply it to
    every footprint they read).  `note_update` records a *commutative update* (an
    `UpdateOf` marker): two updates of one resource commute (each adds to or takes from
    it, and neither step learns anything from it), while an update and a read or a write
    of it do not.  Only `DporChooser` tells updates apart; every other reader of a
    footprint (`with_noted_reads`, `DfsChooser`) takes an update for a write, which is
    never less sound.

    Two steps are independent when both footprints are known, neither writes what the
    other reads, updates or writes, and neither updates what the other reads.  Reduction
    built on this is sound when each step's declared and noted footprint covers every
    shared access it makes.  Lock discipline is not
    assumed: the lock a step acquires says nothing about the rest of the step (a read
    under the wrong lock is exactly the bug to find).

See also
    `odp_async.explore.dfs` (sleep sets), `odp_async._runtime.sim`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import attrs

from ._base import RUNTIME_VAR

__all__ = [
    "FieldOf",
    "Footprint",
    "GateOpened",
    "ReadOf",
    "UpdateOf",
    "access_kinds",
    "declared_footprint",
    "independent",
    "note",
    "hidden_write",
    "note_read",
    "note_update",
    "noted_run_starts",
    "tracking_run_ends",
    "tracking_run_starts",
    "tracking_session",
    "with_noted_reads",
]

#: ``RUNTIME_VAR.get``, bound once: `note` and `note_read` ask it at every call.
_runtime_in_effect = RUNTIME_VAR.get


@attrs.frozen
class Footprint:
    """The resources a step reads and writes.

    `label`, if given, is how the step is shown in a run's step list and timelines
    (``"store 'counter'"``); display only: it takes no part in equality, hashing or
    reduction.  Without one the step is shown as ``Footprint``.
    """

    reads: frozenset[Hashable] = frozenset()
    writes: frozenset[Hashable] = frozenset()
    label: str | None = attrs.field(default=None, eq=False)

    # `read` and `write` are memoised below (after the class): a checkpoint label built in
    # a loop (``checkpoint(Footprint.write("x"))``) then costs a C-level cache hit, no
    # Python frame.  A subclass gets plain class methods making its own instances.

    @staticmethod
    def read(*resources: Hashable) -> Footprint:
        """Reads of `resources`.  Equal calls may return the same (immutable) record."""
        return Footprint(reads=frozenset(resources))

    @staticmethod
    def write(*resources: Hashable) -> Footprint:
        """Writes of `resources`.  Equal calls may return the same (immutable) record."""
        return Footprint(writes=frozenset(resources))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "read" not in cls.__dict__:
            cls.read = classmethod(_subclass_read)  # type: ignore[assignment]
        if "write" not in cls.__dict__:
            cls.write = classmethod(_subclass_write)  # type: ignore[assignment]

    def __or__(self, other: Footprint) -> Footprint:
        return Footprint(self.reads | other.reads, self.writes | other.writes)

    def __str__(self) -> str:
        parts = [f"r:{r!r}" for r in self.reads] + [f"w:{w!r}" for w in self.writes]
        return "{" + ", ".join(sorted(parts)) + "}"


#: A bounded memo of immutable values (the least recently used dropped past its size):
#: results never depend on it.
_INTERNED_MAX = 4096
Footprint.read = staticmethod(functools.lru_cache(maxsize=_INTERNED_MAX)(Footprint.read))  # type: ignore[method-assign]
Footprint.write = staticmethod(functools.lru_cache(maxsize=_INTERNED_MAX)(Footprint.write))  # type: ignore[method-assign]


def _subclass_read(cls: type[Footprint], *resources: Hashable) -> Footprint:
    return cls(reads=frozenset(resources))


def _subclass_write(cls: type[Footprint], *resources: Hashable) -> Footprint:
    return cls(writes=frozenset(resources))


def declared_footprint(
    label: object, *, trust_primitives: bool, noted_only: bool = False
) -> Footprint | None:
    """The footprint a checkpoint label declares, or None (unknown).

    A `Footprint` declares itself (the author's declaration of the whole step).  Under
    `noted_only` (the program's promise that every shared access of the step is noted)
    and `trust_primitives`, a primitive (anything with ``describe_wait``), or a waiter
    parked on one, declares a write of that primitive; the attempt at a primitive whose
    class sets ``attempt_notes_itself`` (`odp_async.sync.Completion`, `RWLock`) declares
    only a read of it: the attempt notes a write itself when it changes the primitive (a
    wait that parks or consumes a ``complete()``), and a read when it changes nothing (a
    wait after ``complete_all()``), so two such waits commute.

    Without `noted_only` a primitive declares nothing, whatever `trust_primitives` says:
    the step that starts at an acquire or a wait goes on to run the program's code up to
    its next checkpoint, which may touch state nobody notes (a plain dict read under one
    lock and written under another), so the step must stay unknown.
    """
    if isinstance(label, Footprint):
        return label
    if trust_primitives and noted_only:
        queue = getattr(label, "queue", None)  # a Waiter: the step after its park
        target = getattr(queue, "_owner", None) or queue if queue is not None else label
        if hasattr(target, "describe_wait"):
            if queue is None and getattr(target, "attempt_notes_itself", False):
                return Footprint(reads=frozenset((target,)))
            return Footprint(writes=frozenset((target,)))
    return None


def independent(a: Footprint | None, b: Footprint | None) -> bool:
    """True when both are known, neither step writes what the other touches and neither
    updates what the other reads (noted reads and updates included)."""
    if a is None or b is None:
        return False
    ar, aw, au = access_kinds(a)
    br, bw, bu = access_kinds(b)
    if aw & (bw | br | bu) or bw & (ar | au):
        return False
    return not (au & br or bu & ar)


def access_kinds(
    fp: Footprint,
) -> tuple[frozenset[Hashable], frozenset[Hashable], frozenset[Hashable]]:
    """`fp`'s (reads, writes, updates), its `ReadOf` and `UpdateOf` markers resolved (a
    resource both written and updated counts as written)."""
    reads = set(fp.reads)
    writes: set[Hashable] = set()
    updates: set[Hashable] = set()
    for w in fp.writes:
        if type(w) is ReadOf:
            reads.add(w.read_of)
        elif type(w) is UpdateOf:
            updates.add(w.update_of)
        else:
            writes.add(w)
    return frozenset(reads), frozenset(writes), frozenset(updates - writes)


def note(resource: Hashable) -> None:
    """Add `resource` to the footprint of the running sim step.  No-op when live.  Sync."""
    rt = _runtime_in_effect(None)
    if rt is not None:
        rt.note(resource)


@attrs.frozen
class ReadOf:
    """A noted read of `read_of` (what `note_read` records; see `with_noted_reads`)."""

    read_of: Hashable


def note_read(resource: Hashable) -> None:
    """Add a read of `resource` to the footprint of the running sim step.  No-op live."""
    rt = _runtime_in_effect(None)
    if rt is not None:
        rt.note(ReadOf(resource))


@attrs.frozen
class UpdateOf:
    """A noted commutative update of `update_of` (what `note_update` records).

    The noting code vouches that the update commutes with every other update of the same
    resource in every state where both can run: the same state results in either order,
    each step goes on the same way (it returns nothing read from the resource) and each
    notes the same footprint.  A counter's increment, or adding an element to a multiset
    and removing one that the remover itself added, are such updates; a read (``len``,
    a test for emptiness) or a plain store of the resource is not one."""

    update_of: Hashable


def note_update(resource: Hashable) -> None:
    """Add a commutative update of `resource` (see `UpdateOf`) to the footprint of the
    running sim step.  No-op live."""
    rt = _runtime_in_effect(None)
    if rt is not None:
        rt.note(UpdateOf(resource))


@attrs.frozen(eq=False)
class GateOpened:
    """Noted by the step whose ``complete_all()`` opens the gate `gate` (a
    `odp_async.sync.Completion` made with ``gate=True``): not an access (the gate's own
    write is noted beside it), a mark DPOR reads to order every wait the open gate lets
    through after this step (`odp_async.explore.dpor`).  Equal only to itself: a reader
    that takes it for a written resource finds nothing else that touches it."""

    gate: object


class FieldOf:
    """One part of one object, as a resource: ``FieldOf(owner, part)``.

    What `odp_async.tracked` notes for a field (`part` is the field's name) or a
    container's entry (`part` is the key, or ``"*"`` for the whole container).  Equal when
    the owner is the *same object* and the parts are equal; hashable whatever the owner
    (an attrs class with ``eq=True`` is not), and it keeps its owner alive.  The explorer
    turns it into a run-stable key from the owner's first appearance and the part
    (`odp_async.explore.dfs`), so two fields of one object stay two resources.
    """

    __slots__ = ("_hash", "owner", "part")

    def __init__(self, owner: object, part: Hashable) -> None:
        self.owner = owner
        self.part = part
        self._hash = hash((id(owner), part))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return type(other) is FieldOf and other.owner is self.owner and other.part == self.part

    def __repr__(self) -> str:
        return f"{type(self.owner).__name__}.{self.part}"


#: What a footprint-keeping run with the noted-only promise calls first (`noted_run_starts`):
#: `odp_async.tracked` puts its check here when imported (the layer below cannot import
#: it).  Process-wide, as the tracked classes it serves are.
NOTED_RUN_HOOKS: list[Callable[[object, Sequence[object]], bool]] = []


def noted_run_starts(main: object = None, args: Sequence[object] = ()) -> bool:
    """Called by the sim when a run that keeps footprints starts under the program's
    noted-only promise (every shared access noted), with the run's main function and
    its arguments: True when the promise can stand for this run, False when some shared
    state is known to escape the notes (the run's steps are then unknown unless
    declared: `odp_async.tracked` walks `main`'s code and `args`).  Sync."""
    ok = True
    for hook in NOTED_RUN_HOOKS:
        ok = hook(main, args) and ok
    return ok


#: What every footprint-keeping run calls when it starts and when it ends, however it
#: ends (`tracking_run_starts`, `tracking_run_ends`): `odp_async.tracked` puts the pair
#: that installs and removes its classes' noting hooks here when imported.
TRACKING_RUN_HOOKS: list[tuple[Callable[[], None], Callable[[], None]]] = []


def tracking_run_starts() -> None:
    """Called by the sim when a run that keeps footprints starts (before its first
    step; nested runs nest).  Sync."""
    for start, _ in TRACKING_RUN_HOOKS:
        start()


def tracking_run_ends() -> None:
    """Called by the sim when a run that keeps footprints ends, normally or by an
    exception: undoes `tracking_run_starts`, in reverse order.  Sync."""
    for _, end in reversed(TRACKING_RUN_HOOKS):
        end()


@contextlib.contextmanager
def tracking_session(chooser: object = None) -> Iterator[None]:
    """One tracking session around the runs of a search: what `tracking_run_starts`
    does once per session (`odp_async.tracked` puts its hooks on every tracked class and
    takes the watched values) happens at its start, and each run inside only nests; it
    is undone when the block ends, however it ends.  Between runs no runtime keeps
    footprints, so the hooks note nothing there.  A search of many short runs costs
    about a third without the per-run install (DPOR over a 5,105-trace program: 10.8 s
    -> 3.8 s).  Given the search's `chooser`, a session only if its runs keep
    footprints (its ``wants_footprints``): other runs see no hook.  Sync; nests."""
    if chooser is not None and not getattr(chooser, "wants_footprints", False):
        yield
        return
    tracking_run_starts()
    try:
        yield
    finally:
        tracking_run_ends()


#: What a search asks after each run of its tracking session (`hidden_write`):
#: `odp_async.tracked` puts its watch on class attributes and module globals here.
HIDDEN_WRITE_HOOKS: list[Callable[[], str | None]] = []


def hidden_write() -> str | None:
    """After a run of a tracking session: what shared state changed during the session
    past every note (a class attribute written through its class...), in one sentence
    naming it, or None.  A search that gets one cannot claim completeness: it raises
    `odp_async.errors.NondeterminismError` with it.  Sync."""
    for hook in HIDDEN_WRITE_HOOKS:
        found = hook()
        if found is not None:
            return found
    return None


def with_noted_reads(fp: Footprint) -> Footprint:
    """`fp` with every `ReadOf` marker turned from a noted resource into a read, and
    every `UpdateOf` marker into a write of what it marks (a reader of plain reads and
    writes takes an update for a write: more conflicts, never fewer)."""
    markers = [w for w in fp.writes if type(w) is ReadOf or type(w) is UpdateOf]
    if not markers:
        return fp
    return Footprint(
        fp.reads | frozenset(m.read_of for m in markers if type(m) is ReadOf),
        (fp.writes - frozenset(markers))
        | frozenset(m.update_of for m in markers if type(m) is UpdateOf),
    )
