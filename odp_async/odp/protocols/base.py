"""The interface every fault/invalidation protocol implements, and the 2014 ucontext skeleton.

Contract
    An `OdpProtocol` decides how device page faults and invalidations exclude each other.
    The ODP core calls it at fixed points; everything else (the mm, the device, the tree,
    the fault loop) is shared:

    ========================================  =============================================
    ``insert(umem)`` / ``remove(umem)``       registration / deregistration of a region
    ``invalidate_range_start(inv)``           the mm is about to change ``inv.range``
    ``invalidate_range_end(inv)``             it has changed it
    ``release()``                             the mm is going away
    ``invalidate_range_start_nonblock(inv)``  the failure path: start a non-blockable
                                              range, or refuse it (`WouldBlock`)
    ``fault_begin(umem, rng) -> token``       before get_user_pages (read a seq, wait)
    ``fault_commit(umem, rng, token, pages)``  install the translations, or say "retry"
    ``fault_wait(umem, rng, token)``           before a retry
    ``holds_back(umem, rng) -> bool``          would a fault starting now wait or retry?
    ========================================  =============================================

    Callbacks run in the invalidating task; fault hooks run in the faulting task.  A hook
    that finds the region or the mm going away raises `FaultAborted`.  Options are keyword
    arguments declared in ``OPTIONS`` (name -> default, a dict frozen into a read-only
    `ProtocolOptions` when the class is created); an unknown one is refused with
    `InvalidArgument` naming it.

    `TreeProtocol` is the 2014 ucontext every protocol of the thread shares: a tree of
    regions under ``umem_rwsem``, one subscription registered with the first region and
    unregistered with the last, callbacks that walk the tree under the read lock and zap
    each overlapping region.  A protocol of that family overrides a few small hooks
    (``start_account``, ``end_account``, ``must_retry``...).  Writing your own: subclass
    `TreeProtocol` (or `OdpProtocol` for a different registry), set ``name`` and
    ``summary``, override the hooks, and pass the class as ``protocol=`` to `World`.

    Hook kinds.  Async (``async def``; the core awaits them, so they may block): every
    row of the table above but ``holds_back``; of `TreeProtocol`, ``on_first_mr``,
    ``before_start``, ``start_account``, ``end_account``, ``after_end``,
    ``release_account`` (and ``release_bumping_seq``), ``commit_under_lock``.  Sync (a
    plain ``def``; never awaited): ``holds_back``, ``check_options`` (a classmethod); of
    `TreeProtocol`, ``on_insert``, ``on_remove``, ``read_token``, ``may_install``,
    ``commit_locked``, ``must_retry``.
    An override of the other kind is refused when the class is created
    (`ProtocolUsageError` naming the class and the hook: on the command line one line,
    exit 2), not left to fail inside a run; so is a public name that is a typo of a hook
    or setting the class leaves alone (``must_retyr``), which the core would never call.

Concurrency
    Hooks may block (they are async); each documents the locks it takes.

See also
    `odp_async.odp.ucontext` (the core that calls these), DESIGN section 2.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ... import _runtime as rt
from ...addr import AddrRange
from ...errors import InvalidArgument, OdpError, ProtocolUsageError, WouldBlock
from ...mm import Invalidation, PinnedPage
from ...sync import WaitQueue
from ...tracked import track_subclass, tracked

if TYPE_CHECKING:
    from ..ucontext import UContext
    from ..umem import Umem

__all__ = ["FaultAborted", "OdpProtocol", "ProtocolOptions", "TreeProtocol"]

#: The types an option's default may have (and tuples / frozensets of them).
_OPTION_VALUE_TYPES = (type(None), bool, int, float, str, bytes)


class FaultAborted(OdpError):
    """The fault must give up: its region is dying or being deregistered, or the mm died."""


@attrs.frozen(eq=False)
class ProtocolOptions(Mapping[str, Any]):
    """A protocol's ``OPTIONS``, read-only: option name -> default, in declaration order.

    The dict a protocol class declares is turned into one when the class is created
    (the metaclass of `OdpProtocol`), so the declaration is a constant: nothing can
    change it during a run, and an exploration that keeps footprints (``dpor``) takes it
    as the constant it is instead of as unnoted state (which would cost all reduction).
    Compares equal to a dict of the same items.  Changing it raises `TypeError`."""

    _items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, owner: str, declared: Mapping[str, Any]) -> ProtocolOptions:
        """Freeze `declared`, the ``OPTIONS`` of class `owner`.  Raises `InvalidArgument`
        (naming the option) for a name that is not an identifier or a default that is not
        an immutable value (None, a bool, number, str, bytes, or a tuple or frozenset of
        those): a mutable default would be shared by every instance and run."""
        if isinstance(declared, ProtocolOptions):
            return declared
        if not isinstance(declared, Mapping):
            raise InvalidArgument(
                f"{owner}.OPTIONS must be a dict of option name -> default, "
                f"got {type(declared).__name__}"
            )
        for key, value in declared.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InvalidArgument(f"{owner}.OPTIONS: option name {key!r} is not an identifier")
            if not _immutable(value):
                raise InvalidArgument(
                    f"{owner}.OPTIONS[{key!r}] must be an immutable value (None, a bool, "
                    f"number, str, bytes, or a tuple of those), got {value!r}"
                )
        return cls(tuple(declared.items()))

    def __getitem__(self, key: str) -> Any:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self._items))


def hook_returned(
    proto: OdpProtocol, hook: str, value: object, expected: str
) -> ProtocolUsageError:
    """The error for `proto`'s `hook` having returned `value` where it promises `expected`
    (e.g. ``"a bool"``): names the hook, the protocol class and the value.  Sync."""
    cls = type(proto)
    hint = " (a hook that forgets `return` gives None)" if value is None else ""
    return ProtocolUsageError(
        f"protocol {getattr(cls, 'name', '?')!r} ({cls.__module__}:{cls.__qualname__}): "
        f"{hook}() returned {value!r} of type {type(value).__name__}; expected "
        f"{expected}{hint}"
    )


def _immutable(value: object) -> bool:
    if type(value) in _OPTION_VALUE_TYPES:
        return True
    if type(value) in (tuple, frozenset):
        return all(_immutable(v) for v in value)  # type: ignore[attr-defined]
    return False


class _ProtocolMeta(abc.ABCMeta):
    """Freezes the ``OPTIONS`` a protocol class declares (`ProtocolOptions.of`) in its
    namespace, before the class exists: so no code writes a class attribute afterwards
    (which an exploration keeping footprints would have to treat as unnoted state).  And
    tracks every protocol class it makes (`odp_async.tracked.track_subclass`), a user's
    subclass as a built-in, so DPOR reduces over a user's protocol as over its base."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _ProtocolMeta:
        declared = namespace.get("OPTIONS")
        qualname = str(namespace.get("__qualname__", name))
        if declared is not None:
            namespace["OPTIONS"] = ProtocolOptions.of(qualname, declared)
        teardown = namespace.get("LAST_MR_UNREGISTER", "2014")
        if teardown not in _LAST_MR_UNREGISTER:
            raise InvalidArgument(
                f"{qualname}.LAST_MR_UNREGISTER must be one of "
                f"{', '.join(map(repr, _LAST_MR_UNREGISTER))}, got {teardown!r}"
            )
        _check_hook_kinds(namespace, bases, qualname)
        _check_hook_names(namespace, bases, qualname)
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        _check_option_names(cls, qualname)
        # Every protocol class is tracked when it is made, a user's as a built-in: its
        # instances' fields are noted, so DPOR reduces over it as over its base.
        track_subclass(cls)
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        protocol = super().__call__(*args, **kwargs)
        options: Mapping[str, Any] = getattr(cls, "OPTIONS", {})
        for key, default in options.items():
            given = kwargs.get(key, default)
            now = getattr(protocol, key, _MISSING)
            if now is not given and (type(now) is not type(given) or now != given):
                raise ProtocolUsageError(
                    f"protocol class {cls.__module__}:{cls.__qualname__}: option {key!r} "
                    f"was {given!r}, but the constructor set the attribute {key!r} to "
                    f"{_brief(now)} after it: the option would do nothing; give the option "
                    "another name"
                )
        return protocol


_MISSING = object()

#: What an option may not be called: the constructor's parameter.
_RESERVED_OPTIONS = frozenset({"ctx"})


def _brief(value: object) -> str:
    text = "no value (deleted)" if value is _MISSING else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_option_names(cls: type, qualname: str) -> None:
    """Refuse (`ProtocolUsageError`) an option of `cls` named like the constructor's
    parameter (``ctx``) or like an attribute of the class or its bases (``name``,
    ``summary``, a hook, a method): each instance's option attribute would hide it, or
    it the option."""
    options: Mapping[str, Any] = getattr(cls, "OPTIONS", {})
    for key in options:
        if key in _RESERVED_OPTIONS or hasattr(cls, key):
            what = (
                "the constructor's parameter"
                if key in _RESERVED_OPTIONS
                else (f"an attribute of the class ({type(getattr(cls, key)).__name__})")
            )
            raise ProtocolUsageError(
                f"protocol class {cls.__module__}:{qualname}: option {key!r} is named like "
                f"{what}; give the option another name"
            )


#: The values of `TreeProtocol.LAST_MR_UNREGISTER`.
_LAST_MR_UNREGISTER = ("2014", "unlocked")


def _check_hook_kinds(namespace: Mapping[str, Any], bases: tuple[type, ...], owner: str) -> None:
    """Refuse (`ProtocolUsageError`, one line naming the class and the hook) a method of
    the class being created that overrides a hook of this package's protocol classes with
    the other kind: a plain ``def`` for an async hook (the core awaits its result: a
    TypeError deep in the run) or an ``async def`` for a sync one (its coroutine would
    never run), or one that cannot take the arguments the hook is called with
    (`_arguments_not_taken`).  Only the names the class itself defines are checked; a
    base class outside this package is no authority."""
    for attr, value in namespace.items():
        if attr.startswith("__"):
            continue
        mine = _function(value)
        if mine is None:
            continue
        hook = next(
            (
                vars(k)[attr]
                for base in bases
                for k in base.__mro__
                if attr in vars(k) and k.__module__.startswith(_PACKAGE)
            ),
            None,
        )
        theirs = _function(hook)
        if theirs is None:
            continue
        where = f"protocol class {namespace.get('__module__')}:{owner}"
        want = inspect.iscoroutinefunction(theirs)
        if inspect.iscoroutinefunction(mine) != want or inspect.isasyncgenfunction(mine):
            raise ProtocolUsageError(
                f"{where}: {attr} must be "
                f"{'an async def' if want else 'a plain def (it is sync)'}, as the hook "
                f"it overrides ({theirs.__qualname__}) is; got {_def_kind(mine)}"
            )
        called_with = _arguments_not_taken(value, mine, hook, theirs)
        if called_with is not None:
            raise ProtocolUsageError(
                f"{where}: {attr}{inspect.signature(mine)} cannot take the arguments the "
                f"hook it overrides ({theirs.__qualname__}) is called with: ({called_with})"
            )


def _check_hook_names(namespace: Mapping[str, Any], bases: tuple[type, ...], owner: str) -> None:
    """Refuse (`ProtocolUsageError`, one line naming the class, the name and the hook) a
    public name the class being created defines that is no hook of this package's
    protocol classes but is a typo of one the class leaves alone (`_typo_of`:
    ``must_retyr`` beside ``must_retry``, ``LAST_MR_UNREGISTR``, ``Fault_Begin``): the core
    never calls it, so a run would check the inherited hook and report that verdict as the
    user's protocol's.  A helper so named is meant: start it with ``_``, which this check
    never looks at."""
    hooks: dict[str, str] = {}
    for base in bases:
        for k in base.__mro__:
            if k.__module__.startswith(_PACKAGE):
                for attr in vars(k):
                    if not attr.startswith("_"):
                        hooks.setdefault(attr, f"{k.__qualname__}.{attr}")
    open_hooks = sorted(hook for hook in hooks if hook not in namespace)
    for attr in namespace:
        if attr.startswith("_") or attr in hooks:
            continue
        hook = next((h for h in open_hooks if _typo_of(attr, h)), None)
        if hook is not None:
            raise ProtocolUsageError(
                f"protocol class {namespace.get('__module__')}:{owner}: {attr!r} is spelt "
                f"almost like {hooks[hook]}, which the class does not override; the core "
                f"never reads {attr!r}: name it {hook!r}, or start a helper's name with '_'"
            )


def _typo_of(name: str, hook: str) -> bool:
    """Whether `name` is `hook` mistyped: equal but for case, or at an optimal string
    alignment distance (edits: a letter added, dropped, changed, or two adjacent ones
    swapped) of 1, or 2 for a hook of 12 letters or more.  `hook` with a suffix
    (``released``, ``must_retry2``) is a name of its own, not a typo."""
    a, b = name.lower(), hook.lower()
    if a == b:
        return True
    if a.startswith(b) or abs(len(a) - len(b)) > 2:
        return False
    limit = 2 if len(b) >= 12 else 1
    # rows[i][j]: the distance between a[:i] and b[:j]
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(
                rows[i - 1][j] + 1,
                row[j - 1] + 1,
                rows[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1] <= limit


def _def_kind(fn: object) -> str:
    """What kind of ``def`` `fn` is, as a hook's error names it."""
    if inspect.isasyncgenfunction(fn):
        return "an async generator (an async def with yield, which cannot be awaited)"
    return "an async def" if inspect.iscoroutinefunction(fn) else "a plain def"


def _arguments_not_taken(value: object, mine: Any, hook: object, theirs: Any) -> str | None:
    """The hook `theirs`'s required positional parameters (``"self, umem, rng, token"``:
    the core passes at least those) when the override `mine` (`value` as the class
    holds it) cannot take them, else None: e.g. ``must_retry(self, umem)``, whose
    TypeError in the run would be reported as the protocol's error, a verdict, for a
    mistake in how it is written.  None too where a signature cannot be read."""
    try:
        wanted = inspect.signature(theirs)
        given = inspect.signature(mine)
    except (TypeError, ValueError):  # no signature to read: no authority
        return None
    required = [
        p.name
        for p in wanted.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    # A staticmethod is called without the instance its hook's function takes first.
    drop = int(isinstance(value, staticmethod) and not isinstance(hook, staticmethod))
    try:
        given.bind(*([None] * (len(required) - drop)))
    except TypeError:
        return ", ".join(required)
    return None


_PACKAGE = __name__.split(".", 1)[0] + "."


def _function(value: object) -> Any:
    """The function behind a method, classmethod or staticmethod; None otherwise."""
    if isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    return value if inspect.isfunction(value) else None


@tracked
class OdpProtocol(metaclass=_ProtocolMeta):
    """A fault/invalidation protocol.  See the module docstring."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Option name -> default.  Declare a dict; it is frozen into a `ProtocolOptions`
    #: when the class is created (its metaclass).
    OPTIONS: ClassVar[Mapping[str, Any]] = ProtocolOptions(())

    def __init__(self, ctx: UContext, **options: Any) -> None:
        self.check_options(options)
        for key, default in self.OPTIONS.items():
            setattr(self, key, options.get(key, default))
        self.ctx = ctx

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse bad `options` before any run (the command line calls it before it
        explores): an unknown name, or a value of another type than its default in
        `OPTIONS`, raises `InvalidArgument` naming the option.  A subclass whose options
        have a narrower range extends it (calling this first).  Sync."""
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            known = ", ".join(sorted(cls.OPTIONS)) or "none"
            raise InvalidArgument(
                f"protocol {cls.name!r} has no option {unknown[0]!r} (its options: {known})"
            )
        for key, default in cls.OPTIONS.items():
            value = options.get(key, default)
            if type(value) is not type(default):
                raise InvalidArgument(
                    f"protocol {cls.name!r} option {key!r} must be a "
                    f"{type(default).__name__}, got {value!r}"
                )

    @abc.abstractmethod
    async def insert(self, umem: Umem) -> None:
        """Make `umem` visible to invalidations (registration)."""

    @abc.abstractmethod
    async def remove(self, umem: Umem) -> None:
        """Take `umem` out; on return no callback runs or will run on it."""

    @abc.abstractmethod
    async def invalidate_range_start(self, inv: Invalidation) -> None: ...

    @abc.abstractmethod
    async def invalidate_range_end(self, inv: Invalidation) -> None: ...

    async def invalidate_range_start_nonblock(self, inv: Invalidation) -> None:
        """The failure path: the start of a non-blockable range (``inv.blockable`` is
        False, e.g. the OOM reaper's `AddressSpace.reap`).  Either do the whole start
        without sleeping (trylock variants: ``acquire_nowait``, ``acquire_read_nowait``)
        and return -- the end will follow -- or undo what was done and raise `WouldBlock`
        (the kernel's ``-EAGAIN``): after a refusal this subscriber gets no end, whatever
        the core's rule.  Default: refuse, having done nothing."""
        raise WouldBlock(f"{self.name} cannot invalidate {inv.range} without sleeping")

    @abc.abstractmethod
    async def release(self) -> None: ...

    @abc.abstractmethod
    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        """Before get_user_pages: return the token `fault_commit` will check."""

    @abc.abstractmethod
    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        """Install `pages` into ``umem.table`` and return True, or return False to retry."""

    @abc.abstractmethod
    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        """Block until a retry may succeed."""

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        """Would a fault on `rng` of `umem` that started right now be kept waiting, or be
        made to retry, by this protocol's state (whatever token it holds)?  Sync; no side
        effects.

        The ODP core asks this at every invalidation end while a fault is pending and
        charges the fault's starvation bound only when the answer is yes (and the
        scheduler passed over neither the faulting task nor the task of an invalidation
        still in flight since the fault's last charge, see "Liveness" in
        `odp_async.odp.ucontext`): so an invalidation counts against
        the protocol only if the protocol itself is what keeps the fault from finishing,
        never because the scheduler kept the fault, or one invalidation, off the CPU.
        An override is the exact answer, from the protocol's own state.

        This default is not asked: a protocol that keeps it (found by identity with this
        function) has the core observe instead, charging an end only while the fault is
        parked (blocked or asleep) inside the protocol's ``fault_begin``/``fault_wait``
        (see "Liveness" in `odp_async.odp.ucontext`): what the chooser merely delayed is
        not charged.  That cannot see a busy-wait inside ``fault_begin`` nor tell a park
        on a lock held by a descheduled task from a hold; override this for the exact
        verdict.  Called directly it answers True.
        """
        return True

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.OPTIONS)
        return f"<protocol {self.name}{' ' + opts if opts else ''}>"


@tracked
class TreeProtocol(OdpProtocol):
    """The 2014 ucontext skeleton: tree + ``umem_rwsem`` + one subscription.

    Registration (``ib_umem_odp_get``)::

        W(umem_rwsem); tree insert; odp_mrs_count++; on_insert(U)
        downgrade_write(umem_rwsem)
        if first MR: on_first_mr(); mmu_notifier_register   (mmap_sem W + all locks)
        up_read(umem_rwsem)

    Deregistration (``ib_umem_odp_release``), by ``LAST_MR_UNREGISTER``::

        "2014":      W(umem_rwsem); tree remove; odp_mrs_count--; on_remove(U)
                     downgrade_write(umem_rwsem)
                     if last MR: mmu_notifier_unregister     (->release: R(umem_rwsem))
                     up_read(umem_rwsem)
        "unlocked":  W(umem_rwsem); tree remove; odp_mrs_count--; on_remove(U)
                     unregistering = last MR; up_write(umem_rwsem)
                     if last MR: mmu_notifier_unregister; unregistering = False; wake
                     (a registration seeing unregistering under W: up_write, wait, retry)

    The 2014 order deadlocks against a registration (the nested read, see
    ``LAST_MR_UNREGISTER``; built-in ``lastdereg-vs-register``)::

        deregister C (the last MR)            register B
        W(umem_rwsem); remove C; downgrade
                                              down_write(umem_rwsem): queued behind R
        mmu_notifier_unregister -> ->release
          down_read(umem_rwsem): queued behind B's W, held by this task: deadlock

    Callbacks::

        start(inv):   before_start(inv); R(umem_rwsem)
                      for U overlapping: start_account(U, inv); zap(U, inv.range)
                      up_read
        end(inv):     R(umem_rwsem); for U overlapping: end_account(U, inv); up_read
                      after_end(inv)
        release():    R(umem_rwsem); for every U: release_account(U); zap(U, all); up_read

    Fault: ``fault_begin`` reads ``read_token(U)`` (default: ``U.seq``, unlocked);
    ``fault_commit`` takes ``U.mutex`` and retries when ``must_retry(U, rng, token)``;
    ``fault_wait`` waits on ``U.completion``.  A dying region aborts the fault.
    """

    name: ClassVar[str] = "tree"
    summary: ClassVar[str] = "the 2014 ucontext skeleton (abstract)"

    # --- registry -------------------------------------------------------------------

    #: How the last region's deregistration unregisters the subscription (checked when
    #: the class is created: `InvalidArgument` for another value):
    #:
    #: ``"2014"``: as ``ib_umem_odp_release`` of the posted patch and of v3.19-v4.19
    #: (``drivers/infiniband/core/umem_odp.c``): ``mmu_notifier_unregister`` is called with
    #: ``umem_rwsem`` downgraded to read, and the ``->release`` it calls
    #: (``ib_umem_notifier_release``) does ``down_read(umem_rwsem)`` again.  A
    #: registration's ``down_write`` queued in between makes that nested read wait behind
    #: it (that era's ``rwsem-xadd.c`` queues a new reader behind a waiting writer even
    #: while readers hold the lock): a deadlock.
    #:
    #: ``"unlocked"``: ``umem_rwsem`` is released before the unregister, as every later
    #: kernel does (v4.20, c9990ab39b6e: ``put_per_mm`` unregisters outside it).  A
    #: registration that finds the unregister under way (``unregistering``, read under
    #: W(umem_rwsem)) lets go of the lock and waits for it to finish, so it never
    #: registers a subscription half torn down (v4.20 gives it a fresh ``per_mm``
    #: instead; the model's context keeps one subscription).  Without a race the steps
    #: and choice points are those of ``"2014"``.
    LAST_MR_UNREGISTER: ClassVar[str] = "2014"

    def __init__(self, ctx: UContext, **options: Any) -> None:
        super().__init__(ctx, **options)
        #: ``"unlocked"`` only: the last region's unregister is under way (set and cleared
        #: by its task; read under W(umem_rwsem) by a registration, which then waits).
        self.unregistering = False
        self._unregistered = WaitQueue("subscription unregistered")

    async def insert(self, umem: Umem) -> None:
        ctx = self.ctx
        await ctx.umem_rwsem.acquire_write()
        while self.unregistering:
            # "unlocked": the subscription is being torn down outside umem_rwsem; the
            # first region's registration must not register it again meanwhile (v4.20
            # makes a fresh per_mm instead).  No yield between the check and the park.
            ctx.umem_rwsem.release_write()
            await self._unregistered.park()
            await ctx.umem_rwsem.acquire_write()
        ctx.tree_insert(umem)
        ctx.odp_mrs_count += 1
        first = ctx.odp_mrs_count == 1
        self.on_insert(umem, first)
        ctx.umem_rwsem.downgrade()
        try:
            if first:
                await self.on_first_mr()
                await ctx.mm.register_notifier(ctx.subscription)
        finally:
            ctx.umem_rwsem.release_read()

    async def remove(self, umem: Umem) -> None:
        ctx = self.ctx
        await ctx.umem_rwsem.acquire_write()
        last = self._take_out(umem)
        if self.LAST_MR_UNREGISTER == "unlocked":
            ctx.umem_rwsem.release_write()
            if last:
                self.unregistering = True
                try:
                    await ctx.mm.unregister_notifier(ctx.subscription)
                finally:
                    self.unregistering = False
                    self._unregistered.wake_all()
            return
        ctx.umem_rwsem.downgrade()
        try:
            if last:
                await ctx.mm.unregister_notifier(ctx.subscription)
        finally:
            ctx.umem_rwsem.release_read()

    def _take_out(self, umem: Umem) -> bool:
        """Under W(umem_rwsem): the tree remove and the count; True for the last region."""
        ctx = self.ctx
        ctx.tree_remove(umem)
        ctx.odp_mrs_count -= 1
        last = ctx.odp_mrs_count == 0
        self.on_remove(umem)
        return last

    def on_insert(self, umem: Umem, first: bool) -> None:
        """Under W(umem_rwsem), right after the tree insert.  Sync."""

    async def on_first_mr(self) -> None:
        """Before the subscription is registered for the first region, with
        R(umem_rwsem) held (downgraded from the insert's W).  Async."""

    def on_remove(self, umem: Umem) -> None:
        """Under W(umem_rwsem), right after the tree remove.  Sync."""

    # --- callbacks ------------------------------------------------------------------

    async def invalidate_range_start(self, inv: Invalidation) -> None:
        if not inv.blockable:
            await self.invalidate_range_start_nonblock(inv)
            return
        ctx = self.ctx
        await self.before_start(inv)
        async with ctx.umem_rwsem.read_locked():
            for umem in ctx.overlapping(inv.range):
                await self.start_account(umem, inv)
                await ctx.zap(umem, inv.range, f"invalidate_range_start({inv})")

    async def invalidate_range_end(self, inv: Invalidation) -> None:
        ctx = self.ctx
        async with ctx.umem_rwsem.read_locked():
            for umem in ctx.overlapping(inv.range):
                await self.end_account(umem, inv)
        await self.after_end(inv)

    async def release(self) -> None:
        ctx = self.ctx
        async with ctx.umem_rwsem.read_locked():
            for umem in ctx.all_umems():
                await self.release_account(umem)
                await ctx.zap(umem, umem.range, "release")

    async def before_start(self, inv: Invalidation) -> None:
        """Before the tree walk of a start."""

    async def start_account(self, umem: Umem, inv: Invalidation) -> None:
        """Per overlapping region, before it is zapped."""

    async def end_account(self, umem: Umem, inv: Invalidation) -> None:
        """Per overlapping region at the end."""

    async def after_end(self, inv: Invalidation) -> None:
        """After the tree walk of an end."""

    async def release_account(self, umem: Umem) -> None:
        """Per region at release: by default mark it dying and wake its waiters."""
        async with umem.mutex:
            umem.dying = True
            umem.completion.complete_all()

    async def release_bumping_seq(self, umem: Umem) -> None:
        """A `release_account` for seq-only protocols: bump the seq too, so a fault that
        read it before the release cannot commit."""
        async with umem.mutex:
            umem.touch("release")
            umem.seq += 1
            umem.dying = True
            umem.completion.complete_all()

    # --- fault ----------------------------------------------------------------------

    async def fault_begin(self, umem: Umem, rng: AddrRange) -> object:
        if umem.dying:
            raise FaultAborted(f"{umem.name} is dying")
        return self.read_token(umem)

    def read_token(self, umem: Umem) -> object:
        """What the fault remembers before get_user_pages.  Sync (one unlocked read)."""
        return umem.seq

    async def fault_commit(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        async with umem.mutex:
            return await self.commit_under_lock(umem, rng, token, pages)

    async def commit_under_lock(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        """With the commit's locks held (``umem.mutex``): retry (False), or write the
        device page table with `UContext.update_device` (True), whose choice point lies
        between the check and the write (mlx5's UMR post sleeps under ``umem_mutex``).
        A subclass that overrides the sync `commit_locked` keeps it: its check and
        install stay atomic, as they were.  Raises `FaultAborted` on a dying region."""
        if type(self).commit_locked is not TreeProtocol.commit_locked:
            return self.commit_locked(umem, rng, token, pages)
        if not self.may_install(umem, rng, token):
            return False
        await self.ctx.update_device(umem, rng, pages)
        return True

    def may_install(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        """With ``umem.mutex`` held: the commit's check (``mmu_interval_read_retry``):
        True to install, False to retry.  Raises `FaultAborted` on a dying region.
        Sync."""
        umem.touch("a fault commit")
        if umem.dying:
            raise FaultAborted(f"{umem.name} is dying")
        return not self._must_retry(umem, rng, token)

    def commit_locked(
        self, umem: Umem, rng: AddrRange, token: object, pages: list[PinnedPage]
    ) -> bool:
        """With ``umem.mutex`` held: retry, or install.  Sync: the check and the install
        are one atomic step (see `UContext.install`); the built-in commit
        (`commit_under_lock`) draws the device update's window instead, and calls this
        only when a subclass overrides it."""
        if not self.may_install(umem, rng, token):
            return False
        self.ctx.install(umem, pages)
        return True

    def _must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        """`must_retry`, its answer checked: anything but a bool is the protocol's mistake
        (`ProtocolUsageError`), never taken for "retry" or "install".  Sync."""
        retry = self.must_retry(umem, rng, token)
        if type(retry) is not bool:
            raise hook_returned(self, "must_retry", retry, "a bool (True: retry)")
        return retry

    def must_retry(self, umem: Umem, rng: AddrRange, token: object) -> bool:
        """With ``umem.mutex`` held: has an invalidation run since `token`?  Sync."""
        return False

    def holds_back(self, umem: Umem, rng: AddrRange) -> bool:
        """A fault that read its token now would be refused at a commit now: `must_retry`
        with a fresh token.  (Waits in ``fault_begin``/``fault_wait`` of this family wait
        for exactly what `must_retry` refuses on.)  A dying region aborts its faults, so
        it holds nothing back."""
        return not umem.dying and self._must_retry(umem, rng, self.read_token(umem))

    async def fault_wait(self, umem: Umem, rng: AddrRange, token: object) -> None:
        if umem.dying:
            raise FaultAborted(f"{umem.name} is dying")
        # wait_for_completion_timeout(MMU_NOTIFIER_TIMEOUT): a lost wake-up costs a
        # timeout and a retry, not a hang (virtual seconds in the sim).
        with rt.move_on_after(self.ctx.fault_wait_timeout):
            await umem.completion.wait()
