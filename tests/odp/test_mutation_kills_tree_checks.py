"""The region tree's lifetime checks as a protocol's calls meet them
(`UContext.tree_insert`, `UContext.note_insert_request`), found unpinned by mutation
testing (tools/mutation.sh): what each violation says.  The body makes the calls a buggy
protocol would: a tree insert of a freed region, an insert request by a task holding no
``mm_users`` reference, and one after the mm's release walk."""

from __future__ import annotations

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE
from odp_async.world import World, run_world

P = PAGE_SIZE


def test_each_lifetime_check_of_an_insert_says_what_it_found() -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 16 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        await w.ctx.deregister_mr(a)
        w.ctx.tree_insert(a)  # freed by its deregistration
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        w.mm.mmget()
        await w.mm.exit()

        async def child() -> None:
            w.ctx.note_insert_request(b)  # this task holds no mm_users reference

        async with rt.task_group() as tg:
            tg.start_soon(child, name="child")
        await w.mm.mmput()  # the last: the release walk runs
        w.ctx.note_insert_request(b)

    run = run_world(body)
    run.sim.unwrap()
    found = [(v.kind, v.detail) for v in run.violations]
    assert [f for f in found if f[0] != "use-after-release"] == [
        (
            "use-after-free",
            "a region tree insert touched region A#0 after it was freed by deregister_mr",
        ),
        (
            "insert-after-release",
            "region B#1 inserted by a task holding no mm_users reference on the mm",
        ),
        ("insert-after-release", "region B#1 inserted after the mm's release walk began"),
    ]
