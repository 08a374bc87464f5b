"""Both cores for generated kernels: which kernels split their outer loop
across threads, the thread count, and the native helper that runs a split
kernel on threads it starts and joins itself.

A kernel whose work is above :data:`SPLIT_WORK` is emitted as a *range
function* ``i32 k(ptr args, i64 lo, i64 hi)`` that runs the iterations
``lo <= i < hi`` of its outer loop, and the entry calls
``symdl_parallel_for(k, args, extent)``.  That helper reads the thread count
*at run time* from a global (so object code in the disk cache never bakes a
count in), cuts ``[0, extent)`` into a few contiguous chunks per thread,
starts the threads (``pthread_create``; the JIT resolves it in this
process), works on chunks itself, and joins every thread before it returns:
no thread outlives its call, and worker threads write only the buffers of
the call that started them.  Each thread takes the next chunk from a shared
counter until none is left, so a thread that starts late (the other core is
busy) or cannot be started at all (``EAGAIN`` under a process or memory
limit) leaves its share to the others, the calling thread at least.

JIT-loaded modules call one copy of that helper per process
(:data:`RUNTIME_SYMBOL`, loaded by :func:`ensure_runtime` before the
first object code that calls it is loaded): defined in every module it cost
LLVM about 25 ms per build.  Exported libraries carry their own copy.
Pickled compiled code that calls it carries the helper's object code, so a
process that receives it (a Dask worker) runs no LLVM for it either.

Only axes whose iterations are independent are split: the outer axis of a
fused elementwise loop (or its flat index), and the outer *output* axis of a
reduction, never a reduction axis.  Every element is then computed by the
same instructions whatever the thread count, so results are bitwise
identical for 1, 2 or 64 threads.  A KERNEL op joins through the ``split``
field of its lowering (``Lowering.split``: how many independent parts its
emitter can share out), and its emitter runs only the parts
``em.outer_range`` names (``em.outer_nest`` for a loop over output rows, see
:mod:`codegen.lower.reduce`; the row slices of a large product, see
:mod:`codegen.lower.contract`).

The thread count: ``SYMDL_NUM_THREADS`` (a positive integer; default: the
cores this process may run on, ``os.sched_getaffinity``), read whenever
compiled code is loaded into the process (:func:`load_from_env`), stored in
the process-wide C global ``symdl_num_threads`` that all JIT-loaded code
reads.  Exported C libraries have a global of their own, 1 (single-threaded)
unless the C program calls ``NAME_set_num_threads``.
"""

from __future__ import annotations

import ctypes
import os
import threading

from llvmlite import ir

from .lower.scalar import I8, I32, I64

__all__ = ["SYMDL_NUM_THREADS", "NUM_THREADS_SYMBOL", "MAX_THREADS", "SPLIT_WORK",
           "num_threads", "set_num_threads", "default_num_threads", "load_from_env", "symbol_address",
           "split_axis", "split_extent", "ParallelRuntime"]

SYMDL_NUM_THREADS = "SYMDL_NUM_THREADS"
NUM_THREADS_SYMBOL = "symdl_num_threads"
#: At most this many threads per kernel (the per-call task array lives on the stack).
MAX_THREADS = 64
#: A kernel is split when its work (elements times operations per element,
#: see :func:`split_extent`) is at least this.  Starting and joining a
#: thread costs about 20-40 us here (docs/performance.md, "Threads"),
#: which a fused loop repays from a few 1e5 element-operations on.
SPLIT_WORK = 1 << 18

PTR = ir.PointerType()
_COUNT = ctypes.c_int32(1)


def default_num_threads() -> int:
    """The cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _parse(value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{SYMDL_NUM_THREADS} must be a positive integer (the threads compiled code may "
                         f"use), got {value!r}")
    return min(n, MAX_THREADS)


def set_num_threads(n: int) -> None:
    """Threads that compiled code in this process uses from its next call on
    (capped at :data:`MAX_THREADS`).

    Example:
        >>> from codegen import parallel
        >>> before = parallel.num_threads()
        >>> parallel.set_num_threads(2); parallel.num_threads()
        2
        >>> parallel.set_num_threads(before)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be at least 1, got {n}")
    _COUNT.value = min(n, MAX_THREADS)


def num_threads() -> int:
    """The thread count compiled code in this process reads on each call.

    Example:
        >>> from codegen import parallel
        >>> parallel.num_threads() >= 1
        True
    """
    return _COUNT.value


def load_from_env() -> int:
    """Set the thread count from ``SYMDL_NUM_THREADS`` (default: all cores);
    called whenever compiled code is loaded.  A value that is not a positive
    integer is a ValueError naming the variable.

    Example:
        >>> import os
        >>> from codegen import parallel
        >>> before = os.environ.pop("SYMDL_NUM_THREADS", None)
        >>> os.environ["SYMDL_NUM_THREADS"] = "3"; parallel.load_from_env()
        3
        >>> del os.environ["SYMDL_NUM_THREADS"]; parallel.load_from_env() == min(parallel.default_num_threads(), 64)
        True
        >>> if before is not None: os.environ["SYMDL_NUM_THREADS"] = before; _ = parallel.load_from_env()
    """
    value = os.environ.get(SYMDL_NUM_THREADS, "")
    n = _parse(value) if value.strip() else min(default_num_threads(), MAX_THREADS)
    _COUNT.value = n
    return n


def symbol_address() -> int:
    """Address of the process-wide thread count that JIT-loaded code reads."""
    return ctypes.addressof(_COUNT)


# ---------------------------------------------------------------- which kernels split
#: Work per element of an op in a fused loop, in units of one add or
#: multiply (a call to the C math library costs about ten of them here).
_LIBM_OPS = ("acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "cos", "cosh", "erf", "exp",
             "exp2", "expm1", "fmod", "hypot", "log", "log10", "log1p", "log2", "logaddexp", "mod", "pow",
             "powc", "sigmoid", "sin", "sinh", "softplus", "tan", "tanh", "floor_divide")
OP_WORK: dict[str, int] = {**dict.fromkeys(_LIBM_OPS, 10), "stop_gradient": 0, "convert": 0}


def _loop_work_per_element(kernel, inlined) -> int:
    """Operations one iteration of a fused loop computes: its members and
    the producer cones inlined into them, plus one per store."""
    work, stack, seen = len(kernel.stores), list(kernel.members), set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        work += OP_WORK.get(n.op, 1)
        stack.extend(m for m in n.inputs if m in inlined)
    return max(work, 1)


def split_axis(shape) -> int:
    """The axis a loop nest over ``shape`` splits: the outermost one that
    is not 1 (every axis before it has one iteration, so its iterations are
    still the nest's outermost ones).

    Example:
        >>> split_axis((3, 5)), split_axis((1, 1, 7, 2)), split_axis((1, 1))
        (0, 2, 0)
    """
    return next((d for d, n in enumerate(shape) if n != 1), 0)


def split_extent(kernel, flat: bool, inlined=frozenset(), em=None) -> int | None:
    """The number of independent outer iterations to share among threads,
    or None when ``kernel`` stays on one thread (too little work, a single
    outer iteration, or an op that is not splittable).  ``inlined``: the
    plan's nodes computed inside their consumers' loops; ``em``: the emitter
    (a KERNEL op's ``split`` rule may read the plan's views).

    Example:
        >>> from codegen.plan import LoopKernel
        >>> split_extent(LoopKernel((3, 10**6)), flat=True), split_extent(LoopKernel((3, 10**6)), flat=False)
        (3000000, 3)
        >>> split_extent(LoopKernel((1000,)), flat=False) is None   # too little work for threads
        True
    """
    from .plan import LoopKernel
    if isinstance(kernel, LoopKernel):
        if not kernel.shape:
            return None
        size = 1
        for d in kernel.shape:
            size *= d
        extent = size if flat else kernel.shape[split_axis(kernel.shape)]
        work = size * _loop_work_per_element(kernel, inlined)
    else:
        from .lower import lowering
        rule = lowering(kernel.node.op).split
        extent = None if rule is None else rule(em, kernel)
        return extent if extent is not None and extent >= 2 else None
    return extent if extent >= 2 and work >= SPLIT_WORK else None


# ---------------------------------------------------------------- native helper
#: The process-wide ``parallel_for`` that JIT-loaded modules call.
RUNTIME_SYMBOL = "symdl_rt_parallel_for"
_RUNTIME: dict = {}
_RUNTIME_LOCK = threading.RLock()


def runtime_object(target) -> bytes:
    """The thread helper's object code for ``target``, compiled once per
    process.  Pickled compiled code that calls the helper carries it
    (``codegen.compiler.Artifact``), so a process that receives such code
    (a Dask worker) loads the helper without running LLVM's optimiser or
    code generator."""
    with _RUNTIME_LOCK:
        code = _RUNTIME.get("object")
        if code is None:
            from . import llvm as cl
            module = ir.Module(name="symdl_thread_runtime")
            module.triple = target.triple
            ParallelRuntime(module, standalone=True).parallel_for()
            code = _RUNTIME["object"] = cl.compile_object(cl.optimize(str(module), target, unroll=False), target)
        return code


def ensure_runtime(target, object_code: bytes | None = None) -> None:
    """Load the thread helper once per process and register it with LLVM as
    :data:`RUNTIME_SYMBOL` (before any module that calls it is loaded):
    from ``object_code`` when given (the helper's object code for this
    target, as :func:`runtime_object` makes it), otherwise compiled here.
    Exported libraries carry their own copy instead."""
    with _RUNTIME_LOCK:
        if "engine" in _RUNTIME:
            return
        import llvmlite.binding as llvm
        code = object_code if object_code is not None else runtime_object(target)
        empty = llvm.parse_assembly("")
        empty.triple = target.triple
        engine = llvm.create_mcjit_compiler(empty, target.new_machine())
        engine.add_object_file(llvm.ObjectFileRef.from_data(code))
        engine.finalize_object()
        address = engine.get_function_address(RUNTIME_SYMBOL)
        if not address:
            raise ValueError("the thread helper's object code does not define " + RUNTIME_SYMBOL)
        llvm.add_symbol(RUNTIME_SYMBOL, address)
        _RUNTIME["engine"] = engine   # the code lives as long as the process


class ParallelRuntime:
    """The helper functions of one LLVM module, made on first use:
    ``symdl_parallel_for`` and the thread body ``symdl_task_run``.

    ``c_name`` (an exported library): the count is an internal global of the
    library, 1 until the C program calls ``c_name + "_set_num_threads"``.
    Otherwise it is the process-wide external ``symdl_num_threads``.
    """

    RANGE_FN = ir.FunctionType(I32, [PTR, I64, I64])

    def __init__(self, module: ir.Module, c_name: str | None = None, standalone: bool = False):
        self.module, self.c_name, self.standalone = module, c_name, standalone
        self._parallel_for = None

    def parallel_for(self) -> ir.Function:
        if self._parallel_for is None:
            if self.c_name is None and not self.standalone:
                # JIT-loaded code calls the process's one copy (compiled once,
                # see ensure_runtime): defining the helper in every module
                # costs LLVM ~25 ms per module
                fnty = ir.FunctionType(I32, [self.RANGE_FN.as_pointer(), PTR, I64])
                self._parallel_for = self.module.globals.get(RUNTIME_SYMBOL) or ir.Function(
                    self.module, fnty, RUNTIME_SYMBOL)
                return self._parallel_for
            count = self._count_global()
            run = self._task_run()
            self._parallel_for = self._emit_parallel_for(count, run)
            if self.standalone:
                self._parallel_for.name = RUNTIME_SYMBOL
                self._parallel_for.linkage = "external"
                self._parallel_for.calling_convention = ""
        return self._parallel_for

    # one task (per thread): {range fn, args, extent, chunks, shared next-chunk counter, rc}
    TASK = ir.LiteralStructType([PTR, PTR, I64, I64, PTR, I32])
    #: Chunks per thread: a thread that runs late or slowly (the other core
    #: is busy) leaves its chunks to the others instead of holding the call.
    CHUNKS_PER_THREAD = 4

    def _count_global(self) -> ir.GlobalVariable:
        if self.c_name is None:
            g = ir.GlobalVariable(self.module, I32, NUM_THREADS_SYMBOL)
            g.linkage = "external"
            return g
        g = ir.GlobalVariable(self.module, I32, f"{self.c_name}__num_threads")
        g.linkage = "internal"
        g.initializer = I32(1)
        setter = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [I32]), f"{self.c_name}_set_num_threads")
        b = ir.IRBuilder(setter.append_basic_block("entry"))
        n = setter.args[0]
        n = b.select(b.icmp_signed("<", n, I32(1)), I32(1), n)
        n = b.select(b.icmp_signed(">", n, I32(MAX_THREADS)), I32(MAX_THREADS), n)
        b.store(n, g)
        b.ret_void()
        return g

    def _task_run(self) -> ir.Function:
        """``ptr symdl_task_run(ptr task)``: the body of every thread (the
        calling one too): take the next chunk from the shared counter and
        run its range, until none is left; keep the first failure code."""
        fn = ir.Function(self.module, ir.FunctionType(PTR, [PTR]), "symdl_task_run")
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        task = fn.args[0]

        def slot(k):
            return b.gep(task, [I32(0), I32(k)], source_etype=self.TASK)
        rng = b.load(slot(0), typ=self.RANGE_FN.as_pointer())
        args, extent = b.load(slot(1), typ=PTR), b.load(slot(2), typ=I64)
        chunks, counter = b.load(slot(3), typ=I64), b.load(slot(4), typ=PTR)
        head, body, done = (fn.append_basic_block(name) for name in ("next", "run", "done"))
        b.branch(head)
        b.position_at_end(head)
        c = b.atomic_rmw("add", counter, I64(1), "monotonic")
        b.cbranch(b.icmp_signed("<", c, chunks), body, done)
        b.position_at_end(body)
        lo = b.udiv(b.mul(extent, c), chunks)
        hi = b.udiv(b.mul(extent, b.add(c, I64(1))), chunks)
        rc = b.call(rng, [args, lo, hi])
        old = b.load(slot(5), typ=I32)
        b.store(b.select(b.icmp_signed("==", old, I32(0)), rc, old), slot(5))
        b.branch(head)
        b.position_at_end(done)
        b.ret(ir.Constant(PTR, None))
        return fn

    def _emit_parallel_for(self, count: ir.GlobalVariable, run: ir.Function) -> ir.Function:
        m = self.module
        fn = ir.Function(m, ir.FunctionType(I32, [self.RANGE_FN.as_pointer(), PTR, I64]), "symdl_parallel_for")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        rng, args, extent = fn.args
        create = m.globals.get("pthread_create") or ir.Function(
            m, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), "pthread_create")
        join = m.globals.get("pthread_join") or ir.Function(m, ir.FunctionType(I32, [I64, PTR]), "pthread_join")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        tasks_ty, tids_ty, started_ty = (ir.ArrayType(t, MAX_THREADS) for t in (self.TASK, I64, I8))
        tasks = _opaque_alloca(b, tasks_ty, "tasks")
        tids = _opaque_alloca(b, tids_ty, "tids")
        started = _opaque_alloca(b, started_ty, "started")
        counter = _opaque_alloca(b, I64, "next_chunk")
        rc_slot = _opaque_alloca(b, I32, "rc")
        # threads = clamp(count, 1, min(extent, MAX_THREADS)), read on every call
        n = b.sext(b.load(count, typ=I32), I64)
        n = b.select(b.icmp_signed("<", n, I64(1)), I64(1), n)
        n = b.select(b.icmp_signed(">", n, extent), extent, n)
        n = b.select(b.icmp_signed(">", n, I64(MAX_THREADS)), I64(MAX_THREADS), n)
        serial = fn.append_basic_block("serial")
        threaded = fn.append_basic_block("threaded")
        b.cbranch(b.icmp_signed("<=", n, I64(1)), serial, threaded)
        b.position_at_end(serial)
        b.ret(b.call(rng, [args, I64(0), extent]))

        b.position_at_end(threaded)
        chunks = b.mul(n, I64(self.CHUNKS_PER_THREAD))
        chunks = b.select(b.icmp_signed(">", chunks, extent), extent, chunks)
        b.store(I64(0), counter)

        def at(array, ty, t):
            return b.gep(array, [I32(0), t], source_etype=ty)

        def fill(t):
            task = at(tasks, tasks_ty, t)
            for k, v in enumerate((rng, args, extent, chunks, counter, I32(0))):
                b.store(v, b.gep(task, [I32(0), I32(k)], source_etype=self.TASK))
            return task

        def loop(start, body, name):
            pre = b.block
            head, inner, after = (fn.append_basic_block(f"{name}_{s}") for s in ("head", "body", "done"))
            b.branch(head)
            b.position_at_end(head)
            t = b.phi(I64)
            t.add_incoming(I64(start), pre)
            b.cbranch(b.icmp_signed("<", t, n), inner, after)
            b.position_at_end(inner)
            body(t)
            t.add_incoming(b.add(t, I64(1)), b.block)
            b.branch(head)
            b.position_at_end(after)

        def start_thread(t):
            # a thread that cannot be started (EAGAIN under a process or
            # memory limit) takes no chunks: the others, the calling thread
            # at least, run them all
            err = b.call(create, [at(tids, tids_ty, t), ir.Constant(PTR, None), run, fill(t)])
            b.store(b.zext(b.icmp_signed("==", err, I32(0)), I8), at(started, started_ty, t))

        def join_thread(t):
            flag = b.load(at(started, started_ty, t), typ=I8)
            with b.if_then(b.icmp_unsigned("!=", flag, I8(0))):
                b.call(join, [b.load(at(tids, tids_ty, t), typ=I64), ir.Constant(PTR, None)])

        loop(1, start_thread, "start")
        b.call(run, [fill(I64(0))])
        loop(1, join_thread, "join")
        b.store(I32(0), rc_slot)

        def first_error(t):
            task = at(tasks, tasks_ty, t)
            rc = b.load(b.gep(task, [I32(0), I32(5)], source_etype=self.TASK), typ=I32)
            cur = b.load(rc_slot, typ=I32)
            b.store(b.select(b.icmp_signed("==", cur, I32(0)), rc, cur), rc_slot)
        loop(0, first_error, "rc")
        b.ret(b.load(rc_slot, typ=I32))
        return fn


def _opaque_alloca(b: ir.IRBuilder, ty: ir.Type, name: str) -> ir.Value:
    """A stack slot typed as an opaque ``ptr`` (llvmlite types an alloca by
    its pointee, and then refuses stores of other types through GEPs of it)."""
    slot = b.alloca(ty, name=name)
    slot.type = PTR
    return slot
