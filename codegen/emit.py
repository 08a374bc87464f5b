"""The lowering walk: a kernel plan -> one LLVM module with one native entry
function that runs the whole graph.

Entry signature: ``i32 NAME(ptr args)`` where ``args`` is an array of
pointers: the input buffers in order, then the output buffers, then the
workspace.  Returns 0 on success, 3 when a runtime index is out of range.

This module owns the walk and the loop machinery (loop nests, loads and
stores through views, the per-index evaluator of fused values); what each op
computes comes from the lowering table (:mod:`codegen.lower`).
"""

from __future__ import annotations

from dataclasses import replace

from llvmlite import ir

from symdl.ir.node import Node

from . import parallel
from .lower import Placement, lowering
from .lower.movement import project
from .lower.scalar import I8, I32, I64, ScalarContext, llvm_type
from .lower.gemm import EPILOGUE_TYPE
from .plan import LoopKernel, OpKernel, Plan
from .views import View

__all__ = ["emit_module", "ERR_INDEX"]

ERR_INDEX = 3
SPLIT_ABOVE = 24  # plans with more kernels get one LLVM function per kernel (see Emitter.run)
PTR = ir.PointerType()


def emit_module(plan: Plan, name: str, c_name: str | None = None) -> str:
    """LLVM IR text of the plan's entry function ``name`` (plus, with
    ``c_name``, the C-callable wrapper of :mod:`codegen.export`)."""
    em = Emitter(plan, name, c_name)
    em.run()
    if c_name is None:  # the Python calling path; exported libraries do not need it
        _add_object_entry(em.module, em.fn, len(plan.inputs) + len(plan.outputs))
    else:
        from .export import add_c_wrapper
        em.fn.linkage = "internal"
        add_c_wrapper(em.module, em.fn, c_name, em.n_in, len(plan.outputs), plan.workspace_bytes)
    return str(em.module)


# numpy's PyArrayObject starts with PyObject_HEAD (16 bytes on 64-bit) and then
# the data pointer; abi.py checks this offset at start-up before relying on it.
ARRAY_DATA_OFFSET = 16


def _add_object_entry(module: ir.Module, entry: ir.Function, n_arrays: int) -> None:
    """``i32 NAME_objs(ptr slots)``: like the entry, but the first ``n_arrays``
    slots hold numpy array objects whose data pointers are read here, so the
    Python side passes ``id(array)`` instead of extracting pointers itself."""
    fn = ir.Function(module, ir.FunctionType(I32, [PTR]), entry.name + "_objs")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    slots = b.alloca(PTR, size=I32(n_arrays + 1))
    for k in range(n_arrays):
        obj = b.load(b.gep(fn.args[0], [I64(k)], source_etype=PTR), typ=PTR)
        data = b.load(b.gep(obj, [I64(ARRAY_DATA_OFFSET)], source_etype=I8), typ=PTR)
        b.store(data, b.gep(slots, [I64(k)], source_etype=PTR))
    work = b.load(b.gep(fn.args[0], [I64(n_arrays)], source_etype=PTR), typ=PTR)
    b.store(work, b.gep(slots, [I64(n_arrays)], source_etype=PTR))
    b.ret(b.call(entry, [slots]))


def _index_key(v) -> tuple:
    return ("c", v.constant) if isinstance(v, ir.Constant) else ("v", id(v))


class Values:
    """Values of nodes at an index inside one loop body.

    A node is computed here when it belongs to the loop (``members``) or to an
    inlined producer cone (``plan.inlined``); otherwise it is loaded from its
    view or is a constant.  What a computed node is comes from its lowering:
    ``at_index`` (ops that need the index: iota, unslice, views read at a
    mapped index) or ``scalar`` (from its operands' values at the same index).
    """

    def __init__(self, em: Emitter, members: set, flat: bool, inside_last: bool = False):
        self.em, self.members, self.flat = em, members, flat
        # True in the middle part of a split loop: along the last axis every
        # masked read is known to read inside its operand (no mask, no clamp)
        self.inside_last = inside_last
        self.cache: dict = {}

    def get(self, n: Node, idx: list) -> ir.Value:
        key = (n, tuple(_index_key(v) for v in idx))
        if key not in self.cache:
            self.cache[key] = self._compute(n, idx)
        return self.cache[key]

    def _compute(self, n: Node, idx: list) -> ir.Value:
        em, plan = self.em, self.em.plan
        if n in plan.scalars:
            v = plan.scalars[n]
            ty = llvm_type(n.dtype)
            return ir.Constant(ty, int(bool(v)) if n.dtype == "bool" else
                               (int(v) if n.dtype == "int64" else float(v)))
        if not (n in self.members or n in plan.inlined):
            view = plan.location[n]
            return em.load(view.flat() if self.flat else view, idx, n.dtype)
        low = lowering(n.op)
        if low.at_index is not None:
            return low.at_index(self, n, idx)
        args = [self.get(i, idx if self.flat else project(idx, n.shape, i.shape)) for i in n.inputs]
        return low.scalar(em.ctx, n, args)


def _computes(n: Node, kernel: LoopKernel, plan: Plan) -> bool:
    """Whether the loop computes ``n`` (rather than loading it)."""
    return n in kernel.members or n in plan.inlined


def _has_masked_read_below(n: Node, plan: Plan) -> bool:
    """Whether computing ``n`` in a loop evaluates a masked read (unslice)."""
    stack, seen = [n], set()
    while stack:
        m = stack.pop()
        if m in seen or m not in plan.inlined and m is not n:
            continue
        seen.add(m)
        if lowering(m.op).region is not None:
            return True
        stack.extend(m.inputs)
    return False


class _Bases(dict):
    """Buffer base pointers of the function being emitted, loaded from its
    ``args`` in its entry block on first use (constants are module globals,
    made once).  Loading every buffer up front in every kernel function
    would make the code quadratic in the number of kernels."""

    def __init__(self, em: Emitter, args: ir.Value):
        super().__init__(em.constants)
        self.em, self.args = em, args
        self.workspace = None

    def __missing__(self, buf_id: int) -> ir.Value:
        em, buf = self.em, self.em.buffers[buf_id]
        with em.b.goto_block(em.alloca_block):  # (before its terminator: dominates every use)
            if buf.kind == "input":
                value = em._load_ptr(self.args, buf.index, f"in{buf.index}")
            elif buf.kind == "output":
                value = em._load_ptr(self.args, em.n_in + buf.index, f"out{buf.index}")
            else:
                if self.workspace is None:
                    self.workspace = em._load_ptr(self.args, em.n_in + em.n_out, "workspace")
                value = em.b.gep(self.workspace, [I64(buf.offset)], source_etype=I8, name=f"w{buf.id}")
        self[buf_id] = value
        return value


class Emitter:
    """The LLVM function being built, and the loop machinery the lowering
    table's emitters use (``loop``, ``loop_nest``, ``load``, ``store``,
    ``alloca``, ``values``)."""

    def __init__(self, plan: Plan, name: str, c_name: str | None = None):
        self.plan = plan
        self.module = ir.Module(name=name)
        self.fn = ir.Function(self.module, ir.FunctionType(I32, [PTR]), name)
        self.name = name
        self.n_epilogues = 0
        self.fn.args[0].name = "args"
        entry = self.fn.append_basic_block("entry")
        self.alloca_block = entry
        self.b = ir.IRBuilder(entry)
        self.ctx = ScalarContext(self.b, self.module)
        self.buffers = {buf.id: buf for buf in plan.buffers}
        self.n_in = sum(1 for buf in plan.buffers if buf.kind == "input")
        self.n_out = sum(1 for buf in plan.buffers if buf.kind == "output")
        self.constants: dict[int, ir.Value] = {}   # constant buffers: module globals
        self.bases: dict[int, ir.Value] = {}
        self._fail_block = None
        self.runtime = parallel.ParallelRuntime(self.module, c_name)
        # (lo, hi) of the outer loop while emitting a kernel's range function
        # (codegen.parallel); consumed by the kernel's outermost loop
        self.outer_range: tuple | None = None

    # ------------------------------------------------------------ top level
    def run(self) -> None:
        plan = self.plan
        for buf in plan.buffers:
            if buf.kind not in ("input", "output", "work"):
                data = bytearray(buf.data.astype(buf.data.dtype.newbyteorder("=")).tobytes())
                ty = ir.ArrayType(I8, len(data))
                g = ir.GlobalVariable(self.module, ty, f"const{buf.id}")
                g.global_constant = True
                g.linkage = "internal"
                g.align = 64
                g.initializer = ir.Constant(ty, data)
                self.constants[buf.id] = g
        self.bases = _Bases(self, self.fn.args[0])
        # Many kernels (an unrolled recurrence, a deep network's gradient):
        # one internal function per kernel, called in order from the entry.
        # LLVM's optimisation and code generation grow faster than linearly
        # with a function's size, so one huge function took minutes where
        # the same code in small functions takes seconds.
        outline = len(plan.kernels) > SPLIT_ABOVE
        for k, kernel in enumerate(plan.kernels):
            epilogue = kernel.epilogue if isinstance(kernel, OpKernel) else None
            if epilogue is not None and not lowering(kernel.node.op).fuses_epilogue(self, kernel):
                # the kernel's emitter cannot run the loop inside its own: run it
                # right after (the planner made sure it can run there)
                self._top_kernel(str(k), replace(kernel, epilogue=None), outline)
                self._top_kernel(f"{k}e", epilogue, outline)
            else:
                self._top_kernel(str(k), kernel, outline)
        self.b.ret(I32(0))
        if self.runtime.c_name is not None:
            self.runtime.parallel_for()  # exported libraries always have NAME_set_num_threads

    def _top_kernel(self, label: str, kernel, outline: bool) -> None:
        """Emit one kernel of the plan from the entry function."""
        flat = isinstance(kernel, LoopKernel) and self._is_flat(kernel)
        extent = parallel.split_extent(kernel, flat, self.plan.inlined, self)
        args = self.fn.args[0]
        if extent is not None:
            # work enough for threads: a range function over the outer
            # loop, run by symdl_parallel_for on as many threads as the
            # count read at run time
            fn = self._kernel_function(label, kernel, ranged=True)
            self._check(self.b.call(self.runtime.parallel_for(), [fn, args, I64(extent)]), label)
        elif outline:
            self._check(self.b.call(self._kernel_function(label, kernel, ranged=False), [args]), label)
        else:
            self._kernel(kernel)

    def _kernel_function(self, k: str, kernel, ranged: bool) -> ir.Function:
        """``kernel`` emitted as an internal function of the entry's ``args``
        (and, ``ranged``, of the range ``lo <= i < hi`` of its outer loop)."""
        fnty = parallel.ParallelRuntime.RANGE_FN if ranged else ir.FunctionType(I32, [PTR])
        fn = ir.Function(self.module, fnty, f"{self.fn.name}_k{k}")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        entry = (self.fn, self.b, self.alloca_block, self.bases)
        self._enter(fn)
        if ranged:
            self.outer_range = (fn.args[1], fn.args[2])
        self._kernel(kernel)
        if self.outer_range is not None:
            raise AssertionError(f"kernel {k} was split across threads but its emitter did not run its "
                                 "outer loop with outer_nest")
        self.b.ret(I32(0))
        self._leave(entry)
        return fn

    def _check(self, rc: ir.Value, k: str) -> None:
        """Return ``rc`` from the entry when a kernel function failed."""
        ok = self.fn.append_basic_block(f"after_k{k}")
        fail = self.fn.append_basic_block(f"fail_k{k}")
        self.b.cbranch(self.b.icmp_signed("==", rc, I32(0)), ok, fail)
        with self.b.goto_block(fail):
            self.b.ret(rc)
        self.b.position_at_end(ok)

    def _kernel(self, kernel) -> None:
        if isinstance(kernel, LoopKernel):
            self.loop_kernel(kernel)
        else:
            lowering(kernel.node.op).kernel(self, kernel)

    def epilogue_function(self, kernel: LoopKernel, index, columns_outer: bool = False) -> ir.Function:
        """``kernel`` (a loop over a product's result) as an epilogue
        function ``f(ectx, r0, rn, c0, cn)`` (``codegen.lower.gemm``) that
        computes its elements in rows ``r0 <= r < r0 + rn`` and columns
        ``c0 <= c < c0 + cn`` of the product's matrix, ``ectx`` being the
        entry's ``args``.  ``index(builder, r, c, flat)`` gives the loop's
        index of that element (``flat``: one index into contiguous memory);
        columns run innermost unless ``columns_outer`` (then rows are the
        result's contiguous axis)."""
        fn = ir.Function(self.module, EPILOGUE_TYPE, f"{self.name}_epilogue{self.n_epilogues}")
        self.n_epilogues += 1
        fn.linkage = "internal"
        saved = (self.fn, self.b, self.alloca_block, self.bases)
        outer_range, self.outer_range = self.outer_range, None
        fail = self._fail_block
        self._enter(fn)
        r0, rn, c0, cn = fn.args[1:]
        members, flat = set(kernel.members), self._is_flat(kernel)

        def element(r, c):
            self._loop_body(kernel, members, flat, index(self.b, r, c, flat))

        r1, c1 = self.b.add(r0, rn), self.b.add(c0, cn)
        if columns_outer:
            self.loop(c1, lambda c: self.loop(r1, lambda r: element(r, c), start=r0), start=c0)
        else:
            self.loop(r1, lambda r: self.loop(c1, lambda c: element(r, c), start=c0), start=r0)
        if self._fail_block is not None:
            raise AssertionError("an epilogue loop cannot fail (its members are elementwise)")
        self.b.ret_void()
        self._leave(saved)
        self._fail_block, self.outer_range = fail, outer_range
        return fn

    def _enter(self, fn: ir.Function) -> None:
        """Emit into ``fn`` (a kernel function taking the entry's ``args``):
        its own builder, stack slots, error block and buffer bases."""
        block = fn.append_basic_block("entry")
        self.fn, self.b, self.alloca_block, self._fail_block = fn, ir.IRBuilder(block), block, None
        self.ctx.b = self.b
        self.bases = _Bases(self, fn.args[0])

    def _leave(self, entry: tuple) -> None:
        self.fn, self.b, self.alloca_block, self.bases = entry
        self.ctx.b = self.b
        self._fail_block = None
        self.outer_range = None

    def _load_ptr(self, args, index: int, name: str) -> ir.Value:
        slot = self.b.gep(args, [I64(index)], source_etype=PTR)
        return self.b.load(slot, typ=PTR, name=name)

    def index_error_block(self):
        """The block that returns ERR_INDEX (a run-time index out of range)."""
        if self._fail_block is None:
            self._fail_block = self.fn.append_basic_block("index_error")
            with self.b.goto_block(self._fail_block):
                self.b.ret(I32(ERR_INDEX))
        return self._fail_block

    # ------------------------------------------------------------ memory
    def _address(self, view: View, idx: list, dtype: str) -> ir.Value:
        b = self.b
        off = I64(view.offset) if view.offset else None
        for i, s in zip(idx, view.strides):
            if s != 0:
                term = i if s == 1 else b.mul(i, I64(s), flags=["nsw"])
                off = term if off is None else b.add(off, term, flags=["nsw"])
        if off is None:
            off = I64(0)
        return b.gep(self.bases[view.buffer], [off], source_etype=llvm_type(dtype, True))

    def load(self, view: View, idx: list, dtype: str) -> ir.Value:
        val = self.b.load(self._address(view, idx, dtype), typ=llvm_type(dtype, True))
        if dtype == "bool":
            val = self.b.icmp_unsigned("!=", val, I8(0))
        return val

    def store(self, value: ir.Value, view: View, idx: list, dtype: str) -> None:
        if dtype == "bool":
            value = self.b.zext(value, I8)
        self.b.store(value, self._address(view, idx, dtype))

    def alloca(self, ty: ir.Type) -> ir.Value:
        """A stack slot in the entry block (so LLVM promotes it to a register)."""
        with self.b.goto_block(self.alloca_block):
            self.b.position_at_start(self.alloca_block)
            return self.b.alloca(ty)

    def values(self) -> Values:
        """An evaluator of values at an index outside any loop kernel's members."""
        return Values(self, set(), False)

    # ------------------------------------------------------------ loops
    def loop_nest(self, shape, body, outer: tuple | None = None) -> None:
        """``body(indices)`` inside nested loops over ``shape`` (row-major);
        ``outer = (lo, hi)`` runs only ``lo <= i < hi`` of the outermost
        axis that is not 1 (``parallel.split_axis``)."""
        idx: list = []
        split = parallel.split_axis(shape)

        def level(d: int):
            if d == len(shape):
                body(list(idx))
                return
            lo, hi = outer if outer is not None and d == split else (0, shape[d])
            self.loop(hi, lambda i: (idx.append(i), level(d + 1), idx.pop()), start=lo)
        level(0)

    def outer_nest(self, shape, body) -> tuple | None:
        """``loop_nest`` for a kernel's outermost loop, whose iterations must
        be independent: in a range function (a kernel split across threads,
        see codegen.parallel) it runs only that thread's part of axis 0.
        Returns that part (None: all of it), for a second pass over the same
        elements (``loop_nest(shape, body, part)``)."""
        outer, self.outer_range = self.outer_range, None
        self.loop_nest(shape, body, outer)
        return outer

    def loop(self, count, body, start=0) -> None:
        """``body(i)`` for ``start <= i < count`` (ints or i64 values)."""
        b = self.b
        count = I64(count) if isinstance(count, int) else count
        start = I64(start) if isinstance(start, int) else start
        pre = b.block
        header = self.fn.append_basic_block("loop")
        inner = self.fn.append_basic_block("body")
        after = self.fn.append_basic_block("next")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64, name="i")
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, count), inner, after)
        b.position_at_end(inner)
        body(i)
        nxt = b.add(i, I64(1), flags=["nuw", "nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(after)

    # ------------------------------------------------------------ fused elementwise loops
    def loop_kernel(self, kernel: LoopKernel) -> None:
        """Emit a fused elementwise loop kernel here."""
        shape = kernel.shape
        members = set(kernel.members)
        flat = self._is_flat(kernel)
        outer, self.outer_range = self.outer_range, None  # this thread's part of axis 0 (or the flat index)

        def body(idx, inside_last=False):
            self._loop_body(kernel, members, flat, idx, inside_last)

        if flat:
            size = 1
            for d in shape:
                size *= d
            lo, hi = outer or (0, size)
            self.loop(hi, lambda i: body([i]), start=lo)
            return
        split = self._masked_interior(kernel) if shape else None
        if split is None:
            self.loop_nest(shape, body, outer)
            return
        # The last axis in three parts: edges with the masked reads, and an
        # interior where every masked read reads inside its operand (vectorises).
        lo, hi = split

        def rows(head, part=None):
            for a, b_ in ((0, lo), (lo, hi), (hi, shape[-1])):
                if b_ > a:
                    start, stop = (a, b_) if part is None else self._clip(a, b_, part)
                    self.loop(stop, lambda i, a=a, b_=b_: body(head + [i], inside_last=(a, b_) == (lo, hi)),
                              start=start)
        if outer is not None and parallel.split_axis(shape) == len(shape) - 1:
            # the split axis is the last: each part clipped to this thread's range
            self.loop_nest(shape[:-1], lambda head: rows(head, outer))
        else:
            self.loop_nest(shape[:-1], rows, outer)

    def _loop_body(self, kernel: LoopKernel, members: set, flat: bool, idx: list, inside_last=False) -> None:
        """One element of a loop kernel: its members at ``idx``, and its stores."""
        values = Values(self, members, flat, inside_last)
        for n in kernel.members:
            values.get(n, idx)
        for n, view in kernel.stores:
            self.store(values.get(n, idx), view.flat() if flat else view, idx, n.dtype)

    def _clip(self, a: int, b_: int, part: tuple) -> tuple:
        """[a, b_) intersected with the run-time range ``part`` (maybe empty)."""
        b = self.b
        lo, hi = part
        start = b.select(b.icmp_signed(">", lo, I64(a)), lo, I64(a))
        stop = b.select(b.icmp_signed("<", hi, I64(b_)), hi, I64(b_))
        return start, stop

    def _is_flat(self, kernel: LoopKernel) -> bool:
        """One flat loop when every access is the same contiguous walk (and
        no member needs its multi-dimensional index)."""
        plan = self.plan
        shape = kernel.shape
        members = set(kernel.members)
        loaded = {i for n in kernel.members for i in n.inputs} | {n for n, _ in kernel.stores}
        loaded = [n for n in loaded if n not in members and n not in plan.scalars]
        views = [plan.location[n].broadcast(shape) for n in loaded if n in plan.location] \
            + [v for _, v in kernel.stores]
        return len(shape) > 1 and all(n in plan.location and n not in plan.inlined for n in loaded) \
            and all(v.shape == shape and v.contiguous() for v in views) \
            and not any(lowering(n.op).at_index is not None for n in kernel.members)

    def _masked_interior(self, kernel: LoopKernel) -> tuple[int, int] | None:
        """[lo, hi) along the last axis where every masked read the loop
        evaluates reads inside its operand; None when the loop has none, or
        one is read at a mapped index (inside another masked read or a view)."""
        plan = self.plan
        shape = kernel.shape
        regions, stack, seen = [], list(kernel.members), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            low = lowering(n.op)
            if low.region is not None:
                region = low.region(n)
                if n.shape != shape or region is None or _has_masked_read_below(n.inputs[0], plan):
                    return None
                regions.append(region)
                continue
            if _computes(n, kernel, plan):
                if low.placement is Placement.VIEW or n.shape != shape:
                    if _has_masked_read_below(n, plan):
                        return None
                    continue
                stack.extend(n.inputs)
        if not regions:
            return None
        lo = max(r[0] for r in regions)
        hi = min(r[1] for r in regions)
        return (lo, hi) if hi - lo >= 8 else None
