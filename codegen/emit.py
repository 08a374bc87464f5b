"""The lowering walk: a kernel plan -> one LLVM module with one native entry
function that runs the whole graph.

Entry signature: ``i32 NAME(ptr args)`` where ``args`` is an array of
pointers: the input buffers in order, then the output buffers, then the
workspace.  Returns 0 on success, 3 when a runtime index is out of range.
"""

from __future__ import annotations

from llvmlite import ir

from symdl.ir.node import Node

from .emit_ops import I8, I32, I64, ScalarContext, emit_elementwise, llvm_type
from .plan import LoopKernel, OpKernel, Plan, View

__all__ = ["emit_module", "ERR_INDEX"]

ERR_INDEX = 3
PTR = ir.PointerType()


def emit_module(plan: Plan, name: str, c_name: str | None = None) -> str:
    """LLVM IR text of the plan's entry function ``name`` (plus, with
    ``c_name``, the C-callable wrapper of :mod:`codegen.export`)."""
    em = _Emitter(plan, name)
    em.run()
    if c_name is None:  # the Python calling path; exported libraries do not need it
        _add_object_entry(em.module, em.fn, len(plan.inputs) + len(plan.outputs))
    else:
        from .export import add_c_wrapper
        n_in = sum(1 for b in plan.buffers if b.kind == "input")
        n_out = len(plan.outputs)
        em.fn.linkage = "internal"
        add_c_wrapper(em.module, em.fn, c_name, n_in, n_out, plan.workspace_bytes)
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


def _project(idx: list, shape: tuple, to: tuple) -> list:
    """The index of an operand of shape ``to`` broadcast against ``shape``."""
    lead = len(shape) - len(to)
    return [I64(0) if d == 1 and shape[lead + k] != 1 else idx[lead + k] for k, d in enumerate(to)]


def _index_key(v) -> tuple:
    return ("c", v.constant) if isinstance(v, ir.Constant) else ("v", id(v))


class _Values:
    """Values of nodes at an index inside one loop body.

    A node is computed here when it belongs to the loop (``members``) or to an
    inlined producer cone (``plan.inlined``); otherwise it is loaded from its
    view or is a constant.  An inlined ``unslice`` reads its operand at the
    shifted index, masked to zero outside the placed region, so padding and
    shifted sums cost no extra pass over memory.
    """

    def __init__(self, em: _Emitter, members: set, flat: bool, inside_last: bool = False):
        self.em, self.members, self.flat = em, members, flat
        # True in the middle part of a split loop: along the last axis every
        # unslice is known to read inside its operand (no mask, no clamp)
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
        computed_here = n in self.members or n in plan.inlined
        if not computed_here:
            view = plan.location[n]
            if self.flat:
                view = View(view.buffer, view.offset, (1,), (1,))
            return em._load(view, idx, n.dtype)
        if n.op == "iota":
            return em._index_value(idx[n.attr("axis")], n.dtype)
        if n.op == "unslice":
            return self._unslice(n, idx)
        if n.op in ("slice", "transpose", "broadcast_to"):
            return self.get(n.inputs[0], self._source_index(n, idx))
        args = [self.get(i, idx if self.flat else _project(idx, n.shape, i.shape)) for i in n.inputs]
        return emit_elementwise(em.ctx, n, args)

    def _source_index(self, n: Node, idx: list) -> list:
        """Where a view reads its operand (views of recomputed values)."""
        b = self.em.b
        if n.op == "broadcast_to":
            return _project(idx, n.shape, n.inputs[0].shape)
        if n.op == "transpose":
            src = [None] * len(idx)
            for k, p in enumerate(n.attr("perm")):
                src[p] = idx[k]
            return src
        out = []
        for i, start, step in zip(idx, n.attr("starts"), n.attr("steps")):
            j = i if step == 1 else b.mul(i, I64(step))
            out.append(j if start == 0 else b.add(j, I64(start)))
        return out

    def _unslice(self, n: Node, idx: list) -> ir.Value:
        b = self.em.b
        (e,) = n.inputs
        ty = llvm_type(n.dtype)
        if e.size == 0:
            return ir.Constant(ty, 0.0)
        inside, mapped = None, []
        last = len(idx) - 1
        for axis, (i, start, step, d) in enumerate(zip(idx, n.attr("starts"), n.attr("steps"), e.shape)):
            j = b.sub(i, I64(start))
            if step == 1 and axis == last and self.inside_last:
                mapped.append(j)  # affine: the loop vectorises
                continue
            if step == 1:
                q = j
                ok = b.and_(b.icmp_signed(">=", q, I64(0)), b.icmp_signed("<", q, I64(d)))
            else:
                q = b.sdiv(j, I64(step))
                exact = b.icmp_signed("==", b.mul(q, I64(step)), j)
                ok = b.and_(exact, b.and_(b.icmp_signed(">=", q, I64(0)), b.icmp_signed("<", q, I64(d))))
            mapped.append(b.select(ok, q, I64(0)))  # always a valid index: the load stays in bounds
            inside = ok if inside is None else b.and_(inside, ok)
        value = self.get(e, mapped)
        return value if inside is None else b.select(inside, value, ir.Constant(ty, 0.0))


def self_or_members(n: Node, kernel: LoopKernel, plan: Plan) -> bool:
    """Whether the loop computes ``n`` (rather than loading it)."""
    return n in kernel.members or n in plan.inlined


def _has_unslice_below(n: Node, plan: Plan) -> bool:
    """Whether computing ``n`` in a loop evaluates an unslice."""
    stack, seen = [n], set()
    while stack:
        m = stack.pop()
        if m in seen or m not in plan.inlined and m is not n:
            continue
        seen.add(m)
        if m.op == "unslice":
            return True
        stack.extend(m.inputs)
    return False


class _Emitter:
    def __init__(self, plan: Plan, name: str):
        self.plan = plan
        self.module = ir.Module(name=name)
        self.fn = ir.Function(self.module, ir.FunctionType(I32, [PTR]), name)
        self.fn.args[0].name = "args"
        entry = self.fn.append_basic_block("entry")
        self.alloca_block = entry
        self.b = ir.IRBuilder(entry)
        self.ctx = ScalarContext(self.b, self.module)
        self.bases: dict[int, ir.Value] = {}
        self.fail_block = None

    # ------------------------------------------------------------ top level
    def run(self) -> None:
        plan = self.plan
        n_in = sum(1 for b in plan.buffers if b.kind == "input")
        n_out = sum(1 for b in plan.buffers if b.kind == "output")
        args = self.fn.args[0]
        workspace = None
        if any(b.kind == "work" for b in plan.buffers):
            workspace = self._load_ptr(args, n_in + n_out, "workspace")
        for buf in plan.buffers:
            if buf.kind == "input":
                self.bases[buf.id] = self._load_ptr(args, buf.index, f"in{buf.index}")
            elif buf.kind == "output":
                self.bases[buf.id] = self._load_ptr(args, n_in + buf.index, f"out{buf.index}")
            elif buf.kind == "work":
                self.bases[buf.id] = self.b.gep(workspace, [I64(buf.offset)], source_etype=I8,
                                                name=f"w{buf.id}")
            else:
                data = bytearray(buf.data.astype(buf.data.dtype.newbyteorder("=")).tobytes())
                ty = ir.ArrayType(I8, len(data))
                g = ir.GlobalVariable(self.module, ty, f"const{buf.id}")
                g.global_constant = True
                g.linkage = "internal"
                g.align = 64
                g.initializer = ir.Constant(ty, data)
                self.bases[buf.id] = g
        for k, kernel in enumerate(plan.kernels):
            if isinstance(kernel, LoopKernel):
                self._loop_kernel(kernel, k)
            else:
                getattr(self, "_" + kernel.node.op)(kernel)
        self.b.ret(I32(0))

    def _load_ptr(self, args, index: int, name: str) -> ir.Value:
        slot = self.b.gep(args, [I64(index)], source_etype=PTR)
        return self.b.load(slot, typ=PTR, name=name)

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

    def _load(self, view: View, idx: list, dtype: str) -> ir.Value:
        val = self.b.load(self._address(view, idx, dtype), typ=llvm_type(dtype, True))
        if dtype == "bool":
            val = self.b.icmp_unsigned("!=", val, I8(0))
        return val

    def _store(self, value: ir.Value, view: View, idx: list, dtype: str) -> None:
        if dtype == "bool":
            value = self.b.zext(value, I8)
        self.b.store(value, self._address(view, idx, dtype))

    def _alloca(self, ty: ir.Type) -> ir.Value:
        with self.b.goto_block(self.alloca_block):
            self.b.position_at_start(self.alloca_block)
            return self.b.alloca(ty)

    # ------------------------------------------------------------ loops
    def _loop_nest(self, shape, body) -> None:
        """``body(indices)`` inside nested loops over ``shape`` (row-major)."""
        idx: list = []

        def level(d: int):
            if d == len(shape):
                body(list(idx))
                return
            self._loop(shape[d], lambda i: (idx.append(i), level(d + 1), idx.pop()))
        level(0)

    def _loop(self, count: int, body, start: int = 0) -> None:
        """``body(i)`` for ``start <= i < count``."""
        b = self.b
        pre = b.block
        header = self.fn.append_basic_block("loop")
        inner = self.fn.append_basic_block("body")
        after = self.fn.append_basic_block("next")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64, name="i")
        i.add_incoming(I64(start), pre)
        b.cbranch(b.icmp_signed("<", i, I64(count)), inner, after)
        b.position_at_end(inner)
        body(i)
        nxt = b.add(i, I64(1), flags=["nuw", "nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(after)

    # ------------------------------------------------------------ fused elementwise loops
    def _loop_kernel(self, kernel: LoopKernel, k: int) -> None:
        plan = self.plan
        shape = kernel.shape
        members = set(kernel.members)
        loaded = {i for n in kernel.members for i in n.inputs} | {n for n, _ in kernel.stores}
        loaded = [n for n in loaded if n not in members and n not in plan.scalars]
        views = [plan.location[n].broadcast(shape) for n in loaded if n in plan.location] \
            + [v for _, v in kernel.stores]
        # One flat loop when every access is the same contiguous walk.
        flat = len(shape) > 1 and all(n in plan.location and n not in plan.inlined for n in loaded) \
            and all(v.shape == shape and v.contiguous() for v in views) \
            and not any(n.op in ("iota", "unslice") for n in kernel.members)

        def body(idx, inside_last=False):
            values = _Values(self, members, flat, inside_last)
            for n in kernel.members:
                values.get(n, idx)
            for n, view in kernel.stores:
                target = View(view.buffer, view.offset, (1,), (1,)) if flat else view
                self._store(values.get(n, idx), target, idx, n.dtype)

        if flat:
            size = 1
            for d in shape:
                size *= d
            self._loop(size, lambda i: body([i]))
            return
        split = self._unslice_interior(kernel) if shape else None
        if split is None:
            self._loop_nest(shape, body)
            return
        # The last axis in three parts: edges with the masked reads, and an
        # interior where every unslice reads inside its operand (vectorises).
        lo, hi = split

        def rows(head):
            for a, b_ in ((0, lo), (lo, hi), (hi, shape[-1])):
                if b_ > a:
                    self._loop(b_, lambda i, a=a, b_=b_: body(head + [i], inside_last=(a, b_) == (lo, hi)), start=a)
        self._loop_nest(shape[:-1], rows)

    def _unslice_interior(self, kernel: LoopKernel) -> tuple[int, int] | None:
        """[lo, hi) along the last axis where every unslice the loop evaluates
        reads inside its operand; None when the loop has none, or one is
        read at a mapped index (inside another unslice or a view)."""
        plan = self.plan
        shape = kernel.shape
        found, stack, seen = [], list(kernel.members), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n.op == "unslice":
                if n.shape != shape or n.attr("steps")[-1] != 1 or _has_unslice_below(n.inputs[0], plan):
                    return None
                found.append(n)
                continue
            if self_or_members(n, kernel, plan):
                if n.op in ("slice", "transpose", "broadcast_to") or n.shape != shape:
                    if _has_unslice_below(n, plan):
                        return None
                    continue
                stack.extend(n.inputs)
        if not found:
            return None
        lo = max(u.attr("starts")[-1] for u in found)
        hi = min(u.attr("starts")[-1] + u.inputs[0].shape[-1] for u in found)
        return (lo, hi) if hi - lo >= 8 else None

    def _index_value(self, i: ir.Value, dtype: str) -> ir.Value:
        if dtype == "int64":
            return i
        return self.b.sitofp(i, llvm_type(dtype))

    # ------------------------------------------------------------ reductions
    def _reduce(self, kernel: OpKernel, init: float, combine) -> None:
        node = kernel.node
        (x,) = node.inputs
        axes = node.attr("axes")
        kept = [a for a in range(x.ndim) if a not in axes]
        ty = llvm_type(node.dtype)
        acc = self._alloca(ty)

        def outer(out_idx):
            self.b.store(ir.Constant(ty, init), acc)

            def inner(red_idx):
                full = [None] * x.ndim
                for a, i in zip(kept, out_idx):
                    full[a] = i
                for a, i in zip(axes, red_idx):
                    full[a] = i
                v = _Values(self, set(), False).get(x, full)
                self.b.store(combine(self.b.load(acc, typ=ty), v), acc)
            self._loop_nest([x.shape[a] for a in axes], inner)
            self._store(self.b.load(acc, typ=ty), kernel.out, out_idx, node.dtype)
        self._loop_nest(node.shape, outer)

    def _reduce_sum(self, kernel: OpKernel) -> None:
        # 'reassoc' on the accumulation only: LLVM may then keep several partial
        # sums in vector registers (a summation order like numpy's pairwise one,
        # not left to right); every other operation stays strict IEEE.
        self._reduce(kernel, 0.0, lambda a, v: self.b.fadd(a, v, flags=("reassoc",)))

    def _reduce_max(self, kernel: OpKernel) -> None:
        def combine(a, v):
            keep = self.b.or_(self.b.fcmp_ordered(">=", a, v), self.b.fcmp_unordered("uno", a, a))
            return self.b.select(keep, a, v)
        self._reduce(kernel, float("-inf"), combine)

    # ------------------------------------------------------------ contraction
    def _dot_general(self, kernel: OpKernel) -> None:
        """Contractions.  With a wide enough b-free block the loops run
        batch, a-free, contracted, b-free (innermost over contiguous output:
        the vectoriser's favourite); otherwise each output element sums its
        contraction in a register."""
        node = kernel.node
        a, bnode = node.inputs
        av, bv = self.plan.location[a], self.plan.location[bnode]
        (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
        free_a = [i for i in range(a.ndim) if i not in ca and i not in ba]
        free_b = [i for i in range(bnode.ndim) if i not in cb and i not in bb]
        nb, nfa = len(ba), len(free_a)
        ty = llvm_type(node.dtype)
        b = self.b
        wide = 1
        for y in free_b:
            wide *= bnode.shape[y]

        def indices(out_idx, c_idx):
            ia, ib = [None] * a.ndim, [None] * bnode.ndim
            for k, (x, y) in enumerate(zip(ba, bb)):
                ia[x] = ib[y] = out_idx[k]
            for k, x in enumerate(free_a):
                ia[x] = out_idx[nb + k]
            for k, y in enumerate(free_b):
                ib[y] = out_idx[nb + nfa + k]
            for k, (x, y) in enumerate(zip(ca, cb)):
                ia[x] = ib[y] = c_idx[k]
            return ia, ib

        contract_shape = [a.shape[x] for x in ca]
        if wide >= 8:
            zero = ir.Constant(ty, 0.0)
            self._loop_nest(node.shape, lambda o: self._store(zero, kernel.out, o, node.dtype))
            head = list(node.shape[:nb + nfa])
            tail = list(node.shape[nb + nfa:])

            def over_head(h_idx):
                def over_contract(c_idx):
                    def over_tail(t_idx):
                        out_idx = h_idx + t_idx
                        ia, ib = indices(out_idx, c_idx)
                        prod = b.fmul(self._load(av, ia, a.dtype), self._load(bv, ib, bnode.dtype))
                        old = self._load(kernel.out, out_idx, node.dtype)
                        self._store(b.fadd(old, prod), kernel.out, out_idx, node.dtype)
                    self._loop_nest(tail, over_tail)
                self._loop_nest(contract_shape, over_contract)
            self._loop_nest(head, over_head)
            return
        acc = self._alloca(ty)

        def outer(out_idx):
            b.store(ir.Constant(ty, 0.0), acc)

            def inner(c_idx):
                ia, ib = indices(out_idx, c_idx)
                prod = b.fmul(self._load(av, ia, a.dtype), self._load(bv, ib, bnode.dtype))
                b.store(b.fadd(b.load(acc, typ=ty), prod, flags=("reassoc",)), acc)
            self._loop_nest(contract_shape, inner)
            self._store(b.load(acc, typ=ty), kernel.out, out_idx, node.dtype)
        self._loop_nest(node.shape, outer)

    # ------------------------------------------------------------ random numbers
    def _random(self, kernel: OpKernel) -> None:
        """Philox4x32-10, exactly as symdl.ir.philox (compiled == interpreted)."""
        from symdl.ir import philox
        b = self.b
        node = kernel.node
        kv = self.plan.location[node.inputs[0]]
        i32 = ir.IntType(32)
        seed = self._load(kv, [I64(0)], "int64")
        call = self._load(kv, [I64(1)], "int64")
        k0, k1 = b.trunc(seed, i32), b.trunc(b.lshr(seed, I64(32)), i32)
        c2, c3 = b.trunc(call, i32), b.trunc(b.lshr(call, I64(32)), i32)
        stream = i32(node.attr("stream"))
        ty = llvm_type(node.dtype)
        flat = View(kernel.out.buffer, kernel.out.offset, (node.size,), (1,))

        def mulhilo(m, c):
            p = b.mul(I64(m), b.zext(c, I64))
            return b.trunc(b.lshr(p, I64(32)), i32), b.trunc(p, i32)

        def body(i):
            x0, x1, x2, x3 = b.trunc(i, i32), stream, c2, c3
            a0, a1 = k0, k1
            for _ in range(philox.ROUNDS):
                hi0, lo0 = mulhilo(philox.M0, x0)
                hi1, lo1 = mulhilo(philox.M1, x2)
                x0, x1, x2, x3 = b.xor(b.xor(hi1, x1), a0), lo1, b.xor(b.xor(hi0, x3), a1), lo0
                a0, a1 = b.add(a0, i32(philox.W0)), b.add(a1, i32(philox.W1))
            if node.attr("dist") == "uniform":
                value = self._unit(x0, x1, node.dtype)
            else:
                u1, u2 = self._unit(x0, x1, "float64"), self._unit(x2, x3, "float64")
                f64 = llvm_type("float64")
                lg = b.call(self.ctx.libm("log1p", f64), [b.fneg(u1)])
                r = b.call(self.ctx.intrinsic("sqrt", f64), [b.fmul(ir.Constant(f64, -2.0), lg)])
                ang = b.fmul(ir.Constant(f64, 2.0 * 3.141592653589793), u2)
                value = b.fmul(r, b.call(self.ctx.intrinsic("cos", f64), [ang]))
                if node.dtype == "float32":
                    value = b.fptrunc(value, ty)
            self._store(value, flat, [i], node.dtype)
        self._loop(node.size, body)

    def _unit(self, w_hi, w_lo, dtype: str) -> ir.Value:
        b = self.b
        f64 = llvm_type("float64")
        if dtype == "float32":
            bits = b.lshr(w_hi, ir.IntType(32)(8))
            v = b.fmul(b.uitofp(bits, f64), ir.Constant(f64, 2.0 ** -24))
            return b.fptrunc(v, llvm_type("float32"))
        hi = b.zext(b.lshr(w_hi, ir.IntType(32)(5)), I64)
        lo = b.zext(b.lshr(w_lo, ir.IntType(32)(6)), I64)
        bits = b.add(b.mul(hi, I64(1 << 26)), lo)
        return b.fmul(b.uitofp(bits, f64), ir.Constant(f64, 2.0 ** -53))

    # ------------------------------------------------------------ gather / scatter
    def _checked_index(self, idx_view: View, mid: list, n: int) -> ir.Value:
        b = self.b
        i = self._load(idx_view, mid, "int64")
        i = b.select(b.icmp_signed("<", i, I64(0)), b.add(i, I64(n)), i)
        ok = b.and_(b.icmp_signed(">=", i, I64(0)), b.icmp_signed("<", i, I64(n)))
        good = self.fn.append_basic_block("index_ok")
        b.cbranch(ok, good, self._fail())
        b.position_at_end(good)
        return i

    def _fail(self):
        if self.fail_block is None:
            self.fail_block = self.fn.append_basic_block("index_error")
            with self.b.goto_block(self.fail_block):
                self.b.ret(I32(ERR_INDEX))
        return self.fail_block

    def _take(self, kernel: OpKernel) -> None:
        node = kernel.node
        x, idx = node.inputs
        axis = node.attr("axis")
        xv, iv = self.plan.location[x], self.plan.location[idx]

        def body(out_idx):
            mid = out_idx[axis:axis + idx.ndim]
            i = self._checked_index(iv, mid, x.shape[axis])
            full = out_idx[:axis] + [i] + out_idx[axis + idx.ndim:]
            self._store(self._load(xv, full, x.dtype), kernel.out, out_idx, node.dtype)
        self._loop_nest(node.shape, body)

    def _take_add(self, kernel: OpKernel) -> None:
        node = kernel.node
        g, idx = node.inputs
        axis = node.attr("axis")
        gv, iv = self.plan.location[g], self.plan.location[idx]
        ty = llvm_type(node.dtype)
        self._loop_nest(node.shape, lambda o: self._store(ir.Constant(ty, 0.0), kernel.out, o, node.dtype))

        def body(g_idx):
            mid = g_idx[axis:axis + idx.ndim]
            i = self._checked_index(iv, mid, node.shape[axis])
            target = g_idx[:axis] + [i] + g_idx[axis + idx.ndim:]
            old = self._load(kernel.out, target, node.dtype)
            self._store(self.b.fadd(old, self._load(gv, g_idx, g.dtype)), kernel.out, target, node.dtype)
        self._loop_nest(g.shape, body)

