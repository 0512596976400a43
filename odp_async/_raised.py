"""A program's exception, read without trusting it: its leaves and its text.

Contract
    `leaves(error)` is the innermost exceptions of `error` (a `BaseExceptionGroup`'s
    members, unwrapped at any depth; a plain exception is its own only leaf), in raise
    order.  It walks with an explicit stack, never recursion, so a group nested deeper
    than the interpreter's recursion limit is read like any other, and a group that
    holds itself is read once.

    `exception_text(error)` is ``str(error)`` when that works, and
    ``<str() raised RuntimeError>`` when the exception's own ``__str__`` raises (or
    returns something that is not text): the program's failure is still reported, by its
    type and that placeholder, never lost to the explorer crashing on it.
    `describe_exception(error)` is ``Type: text`` (``Type`` alone for empty text).

    Why: the error a run ended with is the program's object.  Its ``__str__`` is the
    program's code, and a group's depth is the program's choice; neither may turn a
    found bug into an internal error.

Concurrency
    None: pure functions.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["describe_exception", "exception_text", "leaves", "walk"]


def walk(error: BaseException) -> Iterator[BaseException]:
    """`error` and every exception a group of it holds, at any depth, outer first (each
    object once)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))


def leaves(error: BaseException) -> list[BaseException]:
    """The innermost exceptions of `error`, in raise order (see the module docstring)."""
    return [e for e in walk(error) if not isinstance(e, BaseExceptionGroup)]


def exception_text(error: BaseException) -> str:
    """``str(error)``, or ``<str() raised Type>`` when that raises."""
    try:
        text = str(error)
    except Exception as e:  # the program's __str__: any failure of it is its own
        return f"<str() raised {type(e).__name__}>"
    return text


def describe_exception(error: BaseException) -> str:
    """``Type: text``, or ``Type`` when the text is empty (`exception_text`)."""
    text = exception_text(error)
    name = type(error).__qualname__
    return f"{name}: {text}" if text else name
