"""One processing element: accumulate, restart on ``first``, publish on ``last`` exactly
``PE_LATENCY`` cycles after the step's operands, hold everything on ``en=0``."""

from rtl.array.pe import PE_LATENCY, ProcessingElement
from tests.rtl.helpers import run


def test_pe_accumulates_publishes_and_stalls():
    pe = ProcessingElement()
    steps = [(-128, -128, 1, 0), (127, -128, 0, 0), (255, 127, 0, 1),    # tile 1 (uint8-range a)
             (5, 7, 1, 1),                                                # tile 2: K = 1
             (3, -2, 1, 0), (4, 4, 0, 1)]                                 # tile 3
    want_results = [None, None, 128 * 128 - 127 * 128 + 255 * 127, 35, None, -6 + 16]
    lag = PE_LATENCY - 1                   # ticks after the step's own tick

    async def bench(ctx):
        ctx.set(pe.en, 1)
        seen = []
        for s, (a, b, first, last) in enumerate(steps + [(0, 0, 0, 0)] * lag):
            ctx.set(pe.a_in, a), ctx.set(pe.b_in, b)
            ctx.set(pe.valid_in, int(s < len(steps))), ctx.set(pe.first_in, first)
            ctx.set(pe.last_in, last)
            await ctx.tick()
            assert ctx.get(pe.a_out) == a and ctx.get(pe.b_out) == b, "operands pass through"
            assert ctx.get(pe.last_out) == last
            seen.append(ctx.get(pe.result))
        published = 0
        for s, want in enumerate(want_results):
            got = seen[s + lag]
            if want is not None:
                assert got == want, f"step {s}: result {got}, want {want}"
                published = want
            else:
                assert got == published, f"step {s}: result {got} moved while accumulating"
        # A stalled cycle changes nothing, even with a valid last step at the inputs.
        ctx.set(pe.en, 0)
        ctx.set(pe.valid_in, 1), ctx.set(pe.a_in, 100), ctx.set(pe.b_in, 100)
        ctx.set(pe.first_in, 1), ctx.set(pe.last_in, 1)
        for _ in range(PE_LATENCY + 1):
            await ctx.tick()
            assert ctx.get(pe.result) == published and ctx.get(pe.a_out) == 0
        # An invalid step neither accumulates nor publishes.
        ctx.set(pe.en, 1), ctx.set(pe.valid_in, 0)
        for _ in range(PE_LATENCY + 1):
            await ctx.tick()
        assert ctx.get(pe.result) == published

    run(pe, bench, name="pe")
