"""What a search established, in one line: the one wording `explore`, the matrix (its
table and ``--json``) and the Python results (`ExploreResult.claim`, `Cell.claim`) use.

Contract
    `claim_text` returns, never saying more than the search showed:

    - a violation seen: ``"violation at schedule i: <kind>"`` (the first schedule that
      showed it, counted from 1; the kind of its first violation: ``error``,
      ``deadlock``, ``stale-translation``...); ``"violation in a probe run before
      schedule 1: <kind>"`` for index 0 (`failure_at`: no schedule failed, but one of
      the runs pct and the portfolio make first to size their search did);
    - no schedule ran: ``"nothing explored (<why> before the first schedule)"``;
    - no violation, but `unfinished` runs reached the step bound and did not finish under
      a fair continuation either: ``"inconclusive: K of N schedules reached the step
      bound of S steps unfinished (a livelock, or a run longer than the bound: raise
      --max-steps); no violation"`` (``, interrupted`` after ``no violation`` when
      interrupted; `raise_steps` names the setting in place of ``--max-steps``, the
      one the caller's user has: ``@explore_test(max_steps=...)`` in an explored
      test); never complete, never a pass;
    - no violation, but a step did not return within the stall limit: ``"inconclusive:
      schedule I stalled (N schedules ended before it): step S of task 'T' has not
      returned after X s (at F:L in func); ..."`` (the run that stalled: ``schedule
      I``, or ``a probe run before the first schedule`` for pct and the portfolio, which
      size their search on a few runs first); never a pass;
    - interrupted: ``"no violation in N schedules (interrupted, not complete)"``;
    - a DPOR search that ran every Mazurkiewicz trace: ``"complete: N traces, no
      violation"`` (N the traces: ``dpor``'s schedules, the portfolio's dpor member's
      `traces`; the portfolio stops there, so a shard whose ``start`` lies past that
      point says so having run no schedule of its own);
    - dfs that ran every schedule within its bound: ``"complete for preemption bound b:
      N schedules, no violation"``;
    - a bounded DPOR search that ended before its budget: ``"preemption bound b reached:
      N traces, no violation found (not complete)"``;
    - a dfs or dpor search one of whose runs stopped at the step bound (`truncated`: the
      steps past it were never explored): ``"no violation in N traces (a run reached
      the step bound of S steps, not complete)"`` (``schedules`` for dfs);
    - otherwise: ``"no violation in N schedules (budget reached, not complete)"``
      (``time budget reached`` when the wall clock stopped it).

    Counts take the singular for one (``1 trace``, ``1 schedule``).  Pure; raises
    nothing.

See also
    `odp_async.explore.runner.ExploreResult.claim`, `odp_async.explore.matrix.Cell`.
"""

from __future__ import annotations

__all__ = ["PROBE_FAILURE", "PROBE_RUN", "carried_claim", "claim_text", "count", "failure_at"]

#: The run a stall names (``stalled_run``) when it is none of the search's schedules but a
#: run made before them: pct and the portfolio size their search on a few runs, and an
#: explored test runs one schedule first.
PROBE_RUN = "a probe run before the first schedule"

#: Where a failure of index 0 was seen (`failure_at`): no schedule of the search failed,
#: but a probe run (`PROBE_RUN`) did; it is the search's failure (a missed bug is never
#: a pass).
PROBE_FAILURE = "in a probe run before schedule 1"


def failure_at(index: int) -> str:
    """Where the failure of `index` was seen: ``"at schedule i"`` (1-based), or for
    index 0 `PROBE_FAILURE` (``"in a probe run before schedule 1"``)."""
    return PROBE_FAILURE if index == 0 else f"at schedule {index}"


def count(n: int, noun: str) -> str:
    """``"1 trace"``, ``"2 traces"``: `n` and `noun`, plural unless `n` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def carried_claim(carried: str, schedules: int, failure: tuple[int, str] | None = None) -> str:
    """The claim of a search whose runs shared state (`carried` says what changed):
    ``inconclusive: the program's runs shared state: ...``; `failure` is ``(index,
    kind)`` of a failure found meanwhile (named, but no verdict: that state may have made
    it).  The explorer's and the matrix's words."""
    found = (
        f" (one failing, {failure[1]}, {failure_at(failure[0])}, which may come of that state)"
        if failure is not None
        else ""
    )
    return (
        f"inconclusive: the program's runs shared state: {carried}; "
        f"{count(schedules, 'schedule')} ran{found}, not all from the same start, so "
        "neither a pass nor a failure can be trusted (reset that state in each run, in a "
        "`finally`)"
    )


def claim_text(
    schedules: int,
    *,
    chooser: str,
    violation: tuple[int, str] | None = None,
    complete: bool = False,
    traces: int | None = None,
    bound: int | None = None,
    cut_by_bound: bool = False,
    interrupted: bool = False,
    out_of_time: bool = False,
    truncated: bool = False,
    max_steps: int | None = None,
    unfinished: int = 0,
    stalled: str | None = None,
    stalled_run: str | None = None,
    raise_steps: str = "--max-steps",
) -> str:
    """The claim of a search that ran `schedules` schedules of `chooser` (see the module
    docstring).  `violation` is ``(schedule index, kind)`` of the first one seen (index
    0: a probe run, `failure_at`);
    `complete` that the systematic search ran out of schedules (every trace, or every
    schedule within `bound` for dfs); `traces` the dpor member's trace count when it is
    not `schedules`; `cut_by_bound` that a bounded DPOR search ended before its budget;
    `truncated` that a dfs or dpor run stopped at the step bound `max_steps`;
    `unfinished` how many runs reached it and did not finish under a fair continuation;
    `stalled` the line of a step that did not return (`odp_async._runtime.stall`),
    `stalled_run` the run it stalled in (``schedule 3``; default: ``a run``);
    `raise_steps` the setting that raises the step bound, as the reader sets it."""
    if violation is not None:
        index, kind = violation
        return f"violation {failure_at(index)}: {kind}"
    if stalled is not None:
        ended = f"{count(schedules, 'schedule')} ended before it"
        return f"inconclusive: {stalled_run or 'a run'} stalled ({ended}): {stalled}"
    if complete and traces is not None:  # a portfolio: its dpor member's traces
        return f"complete: {count(traces, 'trace')}, no violation"
    if schedules == 0:
        why = "interrupted" if interrupted else "time budget reached"
        if not interrupted and not out_of_time:
            why = "the search ended"
        return f"nothing explored ({why} before the first schedule)"
    ran = count(schedules, "schedule")
    if unfinished:
        at = f" of {max_steps} steps" if max_steps is not None else ""
        return (
            f"inconclusive: {unfinished} of {ran} reached the step bound{at} unfinished "
            f"(a livelock, or a run longer than the bound: raise {raise_steps}); no violation"
            + (", interrupted" if interrupted else "")
        )
    if interrupted:
        return f"no violation in {ran} (interrupted, not complete)"
    if complete and chooser == "dpor":
        return f"complete: {count(schedules, 'trace')}, no violation"
    if complete and chooser == "dfs":
        return f"complete for preemption bound {bound}: {ran}, no violation"
    if truncated and chooser in ("dfs", "dpor") and not out_of_time:
        noun = "trace" if chooser == "dpor" else "schedule"
        at = f" of {max_steps} steps" if max_steps is not None else ""
        return (
            f"no violation in {count(schedules, noun)} (a run reached the step bound{at}, "
            "not complete)"
        )
    if chooser == "dpor" and bound is not None and cut_by_bound:
        return (
            f"preemption bound {bound} reached: {count(schedules, 'trace')}, "
            "no violation found (not complete)"
        )
    spent = "time budget" if out_of_time else "budget"
    return f"no violation in {ran} ({spent} reached, not complete)"
