"""Numba building blocks of the generated kernels: stack scratch arrays and bar views.

`slots`: a fixed-size float64 array on the stack. The kernels copy a parameter
set and its strategy state into such arrays before the bar loop. LLVM knows
stack memory aliases none of the kernel's array arguments, so after the step is
inlined it keeps the strategy's slots in registers; with a heap row instead,
every slot went through memory on every bar (measured: ~0.6x the speed of a
hand-written loop, vs ~0.97x). The array has no meminfo: it is only valid
inside the function that made it. It is what a step gets as ``p`` (its
parameters, made read-only by `read_only`) and ``s`` (its state): a `Slots`
of exactly the declared length, whose integer indexing is checked against it
and never wrapped. Unchecked (until 2026-12-05), a step that used ``s[1]``
with one slot declared wrote past its array, over another variable of the
kernel or none, and its results were wrong yet repeatable, so ``verify`` could
not tell; now its parameter set fails with an IndexError that says so. Steps
index their slots with constants and the length is a constant, so the check
folds away where the index is in range.

`bars_view`: what a step gets as ``o, h, l, c, v`` (and ``t``) at bar ``i``:
the bars ``[0, i]`` of the loaded arrays, as a `BarsView`. Indexing one with
an integer is checked against that range, in one unsigned comparison, and
never wrapped: a later bar (look-ahead) or a negative index raises
IndexError, which the engine reports for the parameter set, instead of
Numba's usual wraparound, which turned ``c[-1]`` into the last *loaded* bar
(a future one), and instead of reading a later bar silently. A negative index
is also how a step that reads further back than its declared warm-up fails
once a run resumes past the bars loaded before the segment (the days that hold
the warm-up, no more), where it read a future bar before. (Checking the
warm-up on every read measured 0.64x the bare loop against 0.72x: not done.)
It is also faster: a signed index costs Numba a wraparound select per read,
and the arrays' lengths stayed live in registers for it (sma_cross's kernel:
0.66x -> 0.72x the bare loop's speed; `benchmarks/bench_engine_kernel.py`).
``len(c)`` is ``i + 1``, and slices are clipped to the view, so they cannot
look ahead either. A view has no meminfo: it borrows the kernel's arrays.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.datamodel import models, register_default
from numba.core.imputils import impl_ret_borrowed, lower_builtin, lower_cast
from numba.extending import intrinsic
from numba.np.arrayobj import getitem_arraynd_intp, make_array, populate_array, setitem_array

from incbt.engine._breaks import BEFORE_FIRST, LOOK_AHEAD, SLOT_OUTSIDE

__all__ = ["BarsView", "Slots", "bars_view", "read_only", "slots"]


class Slots(types.Array):
    """A step's parameters (``what`` "parameter") or state ("state"): a float64 array
    of ``n`` slots whose integer indexing is checked (see the module)."""

    def __init__(self, n: int, what: str, readonly: bool = False) -> None:
        self.n, self.what = n, what
        name = ("readonly " if readonly else "") + f"{what}_slots[{n}]"
        super().__init__(types.float64, 1, "C", readonly=readonly, name=name)

    @property
    def key(self):  # type: ignore[no-untyped-def]
        return super().key + (self.n, self.what)


register_default(Slots)(models.ArrayModel)


@lower_cast(Slots, types.Array)
def _slots_as_array(context, builder, fromty, toty, val):  # noqa: ARG001
    return val  # the same data model


@intrinsic
def slots(typingctx, n, what):  # noqa: ARG001 - numba's intrinsic signature
    """A C-contiguous float64 array of ``n`` (a literal int, 0 allowed) slots in the
    calling function's stack frame, as a `Slots` of kind ``what`` (a literal string:
    "parameter" or "state")."""
    if (
        not isinstance(n, types.IntegerLiteral)
        or n.literal_value < 0
        or not isinstance(what, types.StringLiteral)
        or what.literal_value not in ("parameter", "state")
    ):
        return None
    size = n.literal_value
    ty = Slots(size, what.literal_value)

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.DoubleType(), size=max(1, size))
        ary = make_array(ty)(context, builder)
        intp = context.get_value_type(types.intp)
        populate_array(
            ary,
            data=ptr,
            shape=[ir.Constant(intp, size)],
            strides=[ir.Constant(intp, 8)],
            itemsize=ir.Constant(intp, 8),
            meminfo=None,
        )
        return ary._getvalue()

    return ty(n, what), codegen


@intrinsic
def read_only(typingctx, ary):  # noqa: ARG001 - numba's intrinsic signature
    """The same `Slots`, read-only: what a step gets as its parameters (a write to one
    is a compile error, as it would outlive the bar and not a resume)."""
    if not isinstance(ary, Slots):
        return None
    ty = Slots(ary.n, ary.what, readonly=True)

    def codegen(context, builder, signature, args):
        return args[0]

    return ty(ary), codegen


def _slot_index(context, builder, ty, idxty, idx):  # type: ignore[no-untyped-def]
    """The index ``idx`` as intp, after raising IndexError unless ``0 <= idx < ty.n``."""
    intp = context.get_value_type(types.intp)
    j = context.cast(builder, idx, idxty, types.intp)
    with cgutils.if_unlikely(builder, builder.icmp_unsigned(">=", j, ir.Constant(intp, ty.n))):
        letter = "p" if ty.what == "parameter" else "s"
        declared = "parameters declared" if ty.what == "parameter" else "state slots declared"
        context.call_conv.return_user_exc(
            builder,
            IndexError,
            (
                f"{SLOT_OUTSIDE} {ty.what} slot outside {letter}[0]..{letter}[{ty.n - 1}] "
                f"({ty.n} {declared}): declare every slot it uses"
                if ty.n
                else f"{SLOT_OUTSIDE} {ty.what} slot, and it declares none: declare every "
                "slot it uses",
            ),
        )
    return j


@lower_builtin(operator.getitem, Slots, types.Integer)
def _slots_getitem(context, builder, sig, args):
    """``p[j]``, ``s[j]``: checked against the declared slots, never wrapped; then
    Numba's own indexing, the same code where the check folds away."""
    ty, idxty = sig.args
    j = _slot_index(context, builder, ty, idxty, args[1])
    return getitem_arraynd_intp(context, builder, sig.replace(args=(ty, types.intp)), (args[0], j))


@lower_builtin(operator.setitem, Slots, types.Integer, types.Any)
def _slots_setitem(context, builder, sig, args):
    """``s[j] = x``: checked as a read is."""
    ty, idxty, valty = sig.args
    j = _slot_index(context, builder, ty, idxty, args[1])
    return setitem_array(
        context, builder, sig.replace(args=(ty, types.intp, valty)), (args[0], j, args[2])
    )


class BarsView(types.Array):
    """A read-only 1-D view of the bars ``[0, i]``, never empty (see the module)."""

    def __init__(self, dtype: types.Type) -> None:
        super().__init__(dtype, 1, "C", readonly=True, name=f"bars_view({dtype})")


register_default(BarsView)(models.ArrayModel)


@lower_cast(BarsView, types.Array)
def _view_as_array(context, builder, fromty, toty, val):  # noqa: ARG001
    return val  # the same data model


@intrinsic
def bars_view(typingctx, arr, last):  # noqa: ARG001 - numba's intrinsic signature
    """The elements ``[0, last]`` of a C-contiguous 1-D array as a `BarsView`
    (``last >= 0`` and inside the array: the kernels' bar index)."""
    if (
        not isinstance(arr, types.Array)
        or arr.ndim != 1
        or arr.layout != "C"
        or not isinstance(last, types.Integer)
    ):
        return None
    view = BarsView(arr.dtype)

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        n = builder.add(context.cast(builder, args[1], sig.args[1], types.intp),
                        ir.Constant(intp, 1))  # fmt: skip
        out = make_array(view)(context, builder)
        populate_array(
            out,
            data=src.data,
            shape=[n],
            strides=cgutils.unpack_tuple(builder, src.strides, 1),
            itemsize=src.itemsize,
            meminfo=None,
        )
        return impl_ret_borrowed(context, builder, view, out._getvalue())

    return view(arr, last), codegen


@lower_builtin(operator.getitem, BarsView, types.Integer)
def _getitem(context, builder, sig, args):
    """``view[j]``: checked against ``[0, i]`` (one unsigned comparison with ``i``),
    never wrapped."""
    viewty, idxty = sig.args
    view = make_array(viewty)(context, builder, args[0])
    j = context.cast(builder, args[1], idxty, types.intp)
    last = builder.sub(builder.extract_value(view.shape, 0), ir.Constant(j.type, 1))
    # which bound it crossed is said apart (QA 2026-12-06: one message for both)
    below = builder.icmp_signed("<", j, ir.Constant(j.type, 0))
    with (
        cgutils.if_unlikely(builder, builder.icmp_unsigned(">", j, last)),
        builder.if_else(below) as (before, after),
    ):
        with before:
            context.call_conv.return_user_exc(
                builder,
                IndexError,
                (BEFORE_FIRST,),
            )
        with after:
            context.call_conv.return_user_exc(
                builder,
                IndexError,
                (LOOK_AHEAD,),
            )
    return context.unpack_value(builder, viewty.dtype, builder.gep(view.data, [j], inbounds=True))
