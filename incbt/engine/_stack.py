"""Numba building blocks of the generated kernels: stack scratch arrays and bar views.

`stack_f8`: a fixed-size float64 scratch array on the stack. The kernels copy
a parameter set and its strategy state into such arrays before the bar loop.
LLVM knows stack memory aliases none of the kernel's array arguments, so after
the step is inlined it keeps the strategy's slots in registers; with a heap
row instead, every slot went through memory on every bar (measured: ~0.6x the
speed of a hand-written loop, vs ~0.97x). The array has no meminfo: it is only
valid inside the function that made it.

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
from numba.np.arrayobj import make_array, populate_array

__all__ = ["BarsView", "bars_view", "stack_f8"]


@intrinsic
def stack_f8(typingctx, n):  # noqa: ARG001 - numba's intrinsic signature
    """A C-contiguous float64[n] in the calling function's stack frame (n: literal int)."""
    if not isinstance(n, types.IntegerLiteral) or n.literal_value < 1:
        return None
    size = n.literal_value
    arrty = types.Array(types.float64, 1, "C")

    def codegen(context, builder, signature, args):
        ptr = cgutils.alloca_once(builder, ir.DoubleType(), size=size)
        ary = make_array(arrty)(context, builder)
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

    return arrty(n), codegen


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
    with cgutils.if_unlikely(builder, builder.icmp_unsigned(">", j, last)):
        context.call_conv.return_user_exc(
            builder,
            IndexError,
            (
                "a step read a bar after the current bar i (look-ahead), or before the first "
                "bar loaded (j < 0: further back than the run has seen, or than the strategy's "
                "warmup): it may read bars i - warmup <= j <= i only, once its own counter "
                "says the run has seen them",
            ),
        )
    return context.unpack_value(builder, viewty.dtype, builder.gep(view.data, [j], inbounds=True))
