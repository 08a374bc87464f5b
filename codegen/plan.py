"""Graph -> kernel plan: which nodes run in which loop, and where every value lives.

Every decision is taken from the lowering table (:mod:`codegen.lower`): a
node's placement and flags, never its op name.

Movement ops (reshape of contiguous data, broadcast_to, transpose, slice) are
*views*: a (buffer, offset, shape, strides) over existing memory, no code.
Elementwise nodes of one shape are fused into loop kernels; a node is stored
to memory only when something outside its loop reads it; unslice is a masked
read inside such loops.  Reductions, contractions and gathers get kernels of
their own; concatenate becomes copy loops into sub-views of its result.
A loop over a contraction's result that reads it only element by element
(bias plus activation) becomes that contraction's epilogue (``_epilogues``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symdl.ir.node import ArrayValue, Node
from symdl.ir.rewrite import toposort

from .lower import Placement, lowering
from .views import View, c_strides, view_extent

__all__ = ["View", "Buffer", "LoopKernel", "OpKernel", "Plan", "make_plan", "check_plan", "ITEMSIZE"]

ITEMSIZE = {"float64": 8, "float32": 4, "int64": 8, "bool": 1}
_MAX_CONE_DEPTH = 400  # keeps the emitter's recursive evaluation shallow
ALIGN = 64


def _placement(n: Node) -> Placement:
    return lowering(n.op).placement


@dataclass
class Buffer:
    id: int
    kind: str          # 'input' | 'output' | 'work' | 'const'
    dtype: str
    size: int          # elements
    index: int = -1    # argument position (inputs, outputs)
    offset: int = 0    # bytes into the workspace ('work')
    data: np.ndarray | None = None  # ('const')


@dataclass
class LoopKernel:
    """One loop nest over ``shape`` computing ``members`` per element and
    storing the listed values to views."""

    shape: tuple[int, ...]
    members: list[Node] = field(default_factory=list)
    stores: list[tuple[Node, View]] = field(default_factory=list)
    dtype_hint: str = "float64"


@dataclass
class OpKernel:
    """A reduction, contraction or gather/scatter node writing ``out``;
    ``epilogue``: a loop kernel over its result that runs with it (inside its
    loops where its emitter can, see ``Lowering.fuses_epilogue``; otherwise
    right after it)."""

    node: Node
    out: View
    scratch: View | None = None  # working memory of its own (Lowering.scratch)
    epilogue: LoopKernel | None = None


@dataclass
class Plan:
    inputs: list[Node]
    outputs: list[Node]
    buffers: list[Buffer]
    kernels: list
    location: dict[Node, View]       # materialised values
    scalars: dict[Node, float]       # constants folded into code
    workspace_bytes: int
    inlined: set = field(default_factory=set)  # computed inside their consumers' loops

    def describe(self) -> str:
        lines = []
        for k in self.kernels:
            if isinstance(k, LoopKernel):
                lines.append(_describe_loop(k))
            else:
                lines.append(f"{k.node.op}{list(k.node.shape)}")
                if k.epilogue is not None:
                    lines.append(f"  + epilogue {_describe_loop(k.epilogue)}")
        return "\n".join(lines)


def _describe_loop(k: LoopKernel) -> str:
    ops = ",".join(n.op for n in k.members) or "copy"
    return f"loop{list(k.shape)} [{ops}] -> {len(k.stores)} stores"


def make_plan(inputs: list[Node], outputs: list[Node]) -> Plan:
    order = toposort(outputs)
    users: dict[Node, list[Node]] = {n: [] for n in order}
    for n in order:
        for i in n.inputs:
            users[i].append(n)
    planner = _Planner(inputs, outputs, order, users)
    return planner.run()


class _Planner:
    def __init__(self, inputs, outputs, order, users):
        self.inputs, self.outputs, self.order, self.users = list(inputs), list(outputs), order, users
        self.buffers: list[Buffer] = []
        self.kernels: list = []
        self.kernel_of: dict[Node, int] = {}      # node -> kernel index computing it
        self.ready: dict[Node, int] = {}          # node -> kernel index after which it is in memory
        self.location: dict[Node, View] = {}
        self.scalars: dict[Node, float] = {}
        self.work = 0
        self.last_loop: dict[tuple, int] = {}
        self.output_index: dict[Node, int] = {}
        self.inlined: set[Node] = set()
        self.host_of: dict[Node, Node] = {}     # inlined node -> the consumer that computes it
        self.cheap: set[Node] = set()           # inlined into every consumer (recomputed)
        self.deps: dict[Node, list[Node]] = {}   # what a cone host reads from memory

    # ------------------------------------------------------------ buffers
    def _buffer(self, kind, dtype, size, index=-1, data=None) -> Buffer:
        buf = Buffer(len(self.buffers), kind, dtype, size, index, data=data)
        if kind == "work":
            buf.offset = self.work
            self.work += -(-max(size * ITEMSIZE[dtype], 1) // ALIGN) * ALIGN
        self.buffers.append(buf)
        return buf

    def _fresh_view(self, node: Node) -> View:
        """Memory for a computed node: its output buffer if it is an output
        (first occurrence), otherwise workspace."""
        k = self.output_index.pop(node, None)
        if k is not None:
            buf = self._buffer("output", node.dtype, node.size, index=k)
        else:
            buf = self._buffer("work", node.dtype, node.size)
        return View(buf.id, 0, node.shape, c_strides(node.shape))

    # ------------------------------------------------------------ main walk
    def run(self) -> Plan:
        for k, out in enumerate(self.outputs):
            self.output_index.setdefault(out, k)
        for k, node in enumerate(self.inputs):
            buf = self._buffer("input", node.dtype, node.size, index=k)
            self.location[node] = View(buf.id, 0, node.shape, c_strides(node.shape))
            self.ready[node] = -1
        self._find_cones()
        for node in self.order:
            if node in self.ready or node in self.inlined:
                continue
            self._place(node)
        self._materialise_loop_values()
        self._write_outputs()
        self._epilogues()
        return Plan(self.inputs, self.outputs, self.buffers, self.kernels, self.location,
                    self.scalars, self.work, self.inlined)

    # ------------------------------------------------------------ producer cones
    def _find_cones(self) -> None:
        """Producer cones: an elementwise node read by exactly one consumer is
        computed inside that consumer's loop instead of being stored, when the
        consumer is an unslice or a reduction (which read it at mapped indices)
        or an elementwise node of the same shape (no recomputation).
        Consumers are visited first, so chains fuse into one loop."""
        outputs = set(self.outputs)
        self._inline_cheap(outputs)
        for host in reversed(self.order):
            if host in self.inlined or not self._can_host(host):
                continue
            cone: set[Node] = set()
            frontier = [host]
            while frontier:
                n = frontier.pop()
                for m in n.inputs:
                    if m in cone or not self._inlinable(m, outputs) or host.depth - m.depth > _MAX_CONE_DEPTH:
                        continue
                    if lowering(n.op).scalar is not None and m.shape != n.shape:
                        continue  # would be recomputed for every broadcast copy
                    if all(u is n or u in cone for u in self.users[m]) and len(set(self.users[m])) == 1:
                        cone.add(m)
                        frontier.append(m)
            self.inlined |= cone
            for m in cone:
                self.host_of[m] = host
            if cone:
                members = cone | {host}
                external = [m for n in members for m in n.inputs if m not in members]
                self.deps[host] = self._expand_cheap(list(dict.fromkeys(external)))

    def _inline_cheap(self, outputs: set) -> None:
        """Values that cost less to recompute than to store and re-read are
        computed by each consumer: one arithmetic step on values in memory
        (``x[:-1] ** 2``), index arithmetic (``iota``, the one-hot basis of a
        Jacobian), and slices/transposes/broadcasts of such values (read at
        mapped indices).  Where something needs one in memory after all
        (a contraction's operand), it is stored then."""
        def in_memory(m: Node) -> bool:
            placement = _placement(m)
            return placement is Placement.LEAF or (placement is Placement.VIEW and in_memory(m.inputs[0]))

        def free(m: Node) -> bool:
            return m in self.cheap or in_memory(m)

        for n in self.order:
            if n in outputs:
                continue
            low = lowering(n.op)
            if (low.cheap and all(free(m) for m in n.inputs)) \
                    or (low.placement is Placement.VIEW and low.at_index is not None and n.inputs[0] in self.cheap):
                self.inlined.add(n)
                self.cheap.add(n)

    def _expand_cheap(self, nodes: list[Node]) -> list[Node]:
        """What reading ``nodes`` needs in memory (recomputed values expanded
        into what they are computed from)."""
        out, stack = [], list(reversed(nodes))
        while stack:
            n = stack.pop()
            if n in self.cheap:
                stack.extend(reversed(n.inputs))
            else:
                out.append(n)
        return list(dict.fromkeys(out))

    def _can_host(self, n: Node) -> bool:
        low = lowering(n.op)
        return low.hosts_loop or low.placement is Placement.LOOP

    def _inlinable(self, n: Node, outputs: set) -> bool:
        return n not in outputs and n not in self.inlined and _placement(n) is Placement.LOOP

    def _reads(self, node: Node) -> list[Node]:
        return self.deps.get(node) or self._expand_cheap(list(node.inputs))

    def _place(self, node: Node) -> None:
        low = lowering(node.op)
        if low.placement is Placement.LEAF:
            self._place_leaf(node)
        elif low.placement is Placement.VIEW:
            self._place_view(node)
        elif low.placement is Placement.LOOP:
            self._place_elementwise(node)
        elif low.placement is Placement.COPY:
            self._place_copy_op(node)
        else:
            # kernels that read through the loop evaluator may recompute
            # their operand; the others read memory
            self._need(self._reads(node) if low.hosts_loop else list(node.inputs))
            view = self._fresh_view(node)
            self.location[node] = view
            scratch = None
            if low.scratch is not None:
                size, dtype = low.scratch(node)
                scratch = View(self._buffer("work", dtype, size).id, 0, (size,), (1,))
            self.kernels.append(OpKernel(node, view, scratch))
            self.ready[node] = self.kernel_of[node] = len(self.kernels) - 1

    def _place_leaf(self, node: Node) -> None:
        if not node.is_const():
            raise ValueError(f"graph input {node.attr('name')!r} is not among the compiled inputs")
        value = node.attr("value")
        if isinstance(value, ArrayValue):
            buf = self._buffer("const", node.dtype, node.size, data=value.array)
            self.location[node] = View(buf.id, 0, node.shape, c_strides(node.shape))
        else:
            self.scalars[node] = value
        self.ready[node] = -1

    def _need(self, nodes) -> None:
        """Make sure these values will be in memory (scalars get a fill buffer)."""
        for n in nodes:
            if n in self.location:
                continue
            if n in self.scalars:
                view = self._scalar_buffer(n)
                self.location[n] = view
            # loop members are materialised after grouping (see _materialise_loop_values);
            # mark them now so that the store is emitted
            elif n in self.kernel_of:
                self._mark_store(n)
            elif n in self.cheap:  # recomputed elsewhere, but wanted in memory here
                self._need(self._expand_cheap([n]))
                view = self._fresh_view(n)
                self.kernels.append(LoopKernel(n.shape, [], [(n, view)]))
                self.location[n] = view
                self.ready[n] = len(self.kernels) - 1

    def _scalar_buffer(self, n: Node) -> View:
        buf = self._buffer("work", n.dtype, n.size)
        view = View(buf.id, 0, n.shape, c_strides(n.shape))
        self.kernels.append(LoopKernel(n.shape, [], [(n, view)]))
        return view

    def _mark_store(self, n: Node) -> None:
        view = self._fresh_view(n)
        self.location[n] = view
        self.kernels[self.kernel_of[n]].stores.append((n, view))

    def _place_view(self, node: Node) -> None:
        (src,) = node.inputs
        if src in self.scalars:
            self.scalars[node] = self.scalars[src]
            self.ready[node] = -1
            return
        self._need([src])
        base = self.location[src]
        derive = lowering(node.op).view
        view = derive(node, base)
        if view is None:  # e.g. reshape of a non-contiguous view: copy first
            buf = self._buffer("work", src.dtype, src.size)
            copy = View(buf.id, 0, src.shape, c_strides(src.shape))
            self.kernels.append(LoopKernel(src.shape, [], [(src, copy)]))
            view = derive(node, copy)
            self.ready[node] = len(self.kernels) - 1
        else:
            self.ready[node] = self.ready[src]
        self.location[node] = view

    def _place_elementwise(self, node: Node) -> None:
        key = node.shape
        k = self.last_loop.get(key)
        reads = self._reads(node)
        if k is not None and all(self._available_in(i, k) for i in reads):
            kernel = self.kernels[k]
        else:
            for i in reads:
                if i not in self.scalars:
                    self._need([i])
            kernel = LoopKernel(node.shape)
            self.kernels.append(kernel)
            k = len(self.kernels) - 1
            self.last_loop[key] = k
        kernel.members.append(node)
        self.kernel_of[node] = k
        self.ready[node] = k
        for i in reads:
            if i not in self.scalars and self.kernel_of.get(i) != k:
                self._need([i])

    def _available_in(self, i: Node, k: int) -> bool:
        if i in self.scalars:
            return True
        if self.kernel_of.get(i) == k and i.shape == self.kernels[k].shape:
            return True
        return self.ready.get(i, 1 << 30) < k

    def _place_copy_op(self, node: Node) -> None:
        self._need(node.inputs)
        out = self._fresh_view(node)
        self.location[node] = out
        for operand, sub in lowering(node.op).copies(node, out):
            self.kernels.append(LoopKernel(operand.shape, [], [(operand, sub)]))
        self.ready[node] = len(self.kernels) - 1

    def _materialise_loop_values(self) -> None:
        """Loop members read outside their loop (or returned) get a store."""
        for node, k in list(self.kernel_of.items()):
            if node in self.location or not isinstance(self.kernels[k], LoopKernel):
                continue
            outside = any(self.kernel_of.get(self.host_of.get(u, u)) != k or _placement(u) is Placement.VIEW
                          for u in self.users.get(node, ()))
            if outside or node in self.output_index:
                self._mark_store(node)

    def _write_outputs(self) -> None:
        """Outputs not computed straight into their buffer are copied there."""
        for k, out in enumerate(self.outputs):
            done = any(b.kind == "output" and b.index == k for b in self.buffers)
            if done:
                continue
            buf = self._buffer("output", out.dtype, out.size, index=k)
            view = View(buf.id, 0, out.shape, c_strides(out.shape))
            if out not in self.scalars and out not in self.location:
                raise AssertionError(f"output {out!r} has no value")
            self.kernels.append(LoopKernel(out.shape, [], [(out, view)]))


    # ------------------------------------------------------------ epilogues
    def _epilogues(self) -> None:
        """Attach to each kernel whose lowering ``fuses_epilogue`` the first
        later loop kernel that can run as soon as the kernel's result exists
        and reads that result only element by element (``_can_follow``).
        The loop leaves the kernel list: it now runs with the kernel, earlier
        than before, which is sound because it reads nothing computed in
        between and every buffer is written once."""
        taken: set[int] = set()
        for d, kernel in enumerate(self.kernels):
            if not isinstance(kernel, OpKernel) or lowering(kernel.node.op).fuses_epilogue is None:
                continue
            for j in range(d + 1, len(self.kernels)):
                loop = self.kernels[j]
                if j not in taken and isinstance(loop, LoopKernel) and self._can_follow(loop, kernel, d):
                    kernel.epilogue = loop
                    taken.add(j)
                    break
        self.kernels = [k for j, k in enumerate(self.kernels) if j not in taken]

    def _can_follow(self, loop: LoopKernel, kernel: OpKernel, d: int) -> bool:
        """Whether ``loop`` may run right after kernel ``d`` (and block by
        block with it): it has the kernel's result shape, reads the result
        only at its own index (through elementwise steps of that shape, never
        through a view or a mapped read), and everything else it reads is in
        memory before kernel ``d`` runs."""
        node, out_buf = kernel.node, kernel.out.buffer
        if loop.shape != node.shape:
            return False
        reads_result = False
        seen: set = set()
        stack = [(m, True) for m in loop.members] + [(m, True) for m, _ in loop.stores]
        while stack:
            n, identity = stack.pop()
            if (n, identity) in seen or n in self.scalars:
                continue
            seen.add((n, identity))
            if n in loop.members or n in self.inlined:
                low = lowering(n.op)
                keep = identity and low.at_index is None and n.shape == loop.shape
                stack.extend((i, keep and i.shape == n.shape) for i in n.inputs)
                continue
            view = self.location.get(n)
            if view is None:
                return False
            if view.buffer == out_buf:
                if n is not node or not identity:
                    return False
                reads_result = True
            elif self.ready.get(n, 1 << 30) >= d:
                return False
        return reads_result


def check_plan(plan: Plan) -> None:
    """Every view stays inside its buffer: the guarantee that native code never
    reads or writes outside its buffers, checked before any code is emitted."""
    sizes = {b.id: b.size for b in plan.buffers}
    views = list(plan.location.values())
    for k in plan.kernels:
        if isinstance(k, LoopKernel):
            views += [v for _, v in k.stores]
        else:
            views += [k.out] + ([k.scratch] if k.scratch is not None else [])
            if k.epilogue is not None:
                views += [v for _, v in k.epilogue.stores]
    for v in views:
        lo, hi = view_extent(v)
        if hi >= lo and (lo < 0 or hi >= sizes[v.buffer]):
            raise AssertionError(f"view {v} leaves its buffer of {sizes[v.buffer]} elements")

