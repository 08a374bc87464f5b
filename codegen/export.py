"""C-callable wrappers, shared libraries and headers for exported functions.

Calling convention of an exported function ``NAME``::

    int NAME(const T *in0, ..., const T *inN, T *out0, ..., T *outM);

one pointer per flattened input and output, each a contiguous C-order buffer
of the compiled shape, ``T`` the element type (``double`` or ``float``).
Returns 0 on success, 3 when a runtime index is out of range, 5 when the
workspace cannot be allocated.  ``void NAME_set_num_threads(int n)`` lets large loops
run on up to ``n`` threads (started and joined within each call; default 1,
so a library never starts threads its program did not ask for).  A function that draws symdl.rand/randn
numbers takes one more input last: ``const int64_t key[2] = {seed, counter}``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from llvmlite import ir

from .lower.scalar import I32, I64

__all__ = ["add_c_wrapper", "c_header", "link_shared", "check_c_name", "RESERVED_NAMES", "ERR_NOMEM"]

ERR_NOMEM = 5

# ---------------------------------------------------------------- names an exported function may not take
# An exported symbol named like a C library function interposes it for the
# whole program that links the library (an exported "exp" or "memcpy" is
# called by libc and libm themselves); a keyword gives a header that does not
# compile.  So these are refused, with reserved identifiers (any leading _).

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
_BitInt _Decimal32 _Decimal64 _Decimal128
and and_eq asm bitand bitor catch char8_t char16_t char32_t class co_await co_return co_yield compl concept
const_cast consteval constinit decltype delete dynamic_cast explicit export friend mutable namespace new
noexcept not not_eq operator or or_eq private protected public reinterpret_cast requires static_cast
template this throw try typeid typename using virtual wchar_t xor xor_eq
""".split())

# libm: each function also has float (f) and long double (l) variants
_LIBM = """
acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 expm1 fabs fdim floor
fma fmax fmin fmod frexp hypot ilogb ldexp lgamma llrint llround log log10 log1p log2 logb lrint lround modf
nan nearbyint nextafter nexttoward pow remainder remquo rint round scalbln scalbn sin sinh sqrt tan tanh
tgamma trunc j0 j1 jn y0 y1 yn gamma significand drem exp10 pow10 sincos lgamma_r gamma_r finite isinf isnan
""".split()

_LIBC_POSIX = """
main abort abs atexit at_quick_exit atof atoi atol atoll bsearch calloc div exit _Exit free getenv labs
ldiv llabs lldiv malloc mblen mbstowcs mbtowc qsort quick_exit rand realloc srand strtod strtof strtol
strtold strtoll strtoul strtoull system wcstombs wctomb aligned_alloc posix_memalign memalign valloc
pvalloc reallocarray setenv unsetenv putenv clearenv mkstemp mkdtemp mktemp realpath random srandom
drand48 erand48 lrand48 nrand48 mrand48 jrand48 srand48 seed48 lcong48 getopt optarg optind opterr optopt
memchr memcmp memcpy memmove memset memccpy mempcpy memmem memrchr strcat strchr strcmp strcoll strcpy
strcspn strerror strlen strncat strncmp strncpy strpbrk strrchr strspn strstr strtok strtok_r strxfrm
strdup strndup strnlen stpcpy stpncpy strcasecmp strncasecmp strsignal strsep strerror_r bzero bcopy bcmp
index rindex ffs explicit_bzero strlcpy strlcat
printf fprintf sprintf snprintf vprintf vfprintf vsprintf vsnprintf scanf fscanf sscanf vscanf vfscanf
vsscanf dprintf vdprintf asprintf vasprintf fopen freopen fclose fflush fread fwrite fgetc fgets fputc
fputs getc getchar gets putc putchar puts ungetc fseek ftell rewind fgetpos fsetpos clearerr feof ferror
perror remove rename tmpfile tmpnam setbuf setvbuf fileno fdopen popen pclose getline getdelim flockfile
funlockfile stdin stdout stderr
isalnum isalpha isblank iscntrl isdigit isgraph islower isprint ispunct isspace isupper isxdigit tolower
toupper isascii toascii
time clock difftime mktime gmtime localtime asctime ctime strftime strptime gmtime_r localtime_r nanosleep
clock_gettime clock_settime clock_getres gettimeofday settimeofday timegm tzset sleep usleep alarm
signal raise sigaction sigprocmask sigemptyset sigfillset sigaddset sigdelset sigismember kill killpg
pause sigsuspend sigwait setjmp longjmp sigsetjmp siglongjmp
open openat close read write pread pwrite lseek dup dup2 dup3 pipe pipe2 fork vfork execl execle execlp
execv execve execvp execvpe _exit getpid getppid getuid geteuid getgid getegid setuid setgid seteuid
setegid chdir fchdir getcwd unlink unlinkat rmdir mkdir mkdirat link symlink readlink access faccessat
chmod fchmod chown fchown lchown stat fstat lstat fstatat truncate ftruncate fsync fdatasync sync isatty
ttyname sysconf pathconf fpathconf umask mmap munmap mprotect msync madvise mlock munlock brk sbrk
ioctl fcntl poll select pselect wait waitpid waitid socket bind listen accept connect send recv sendto
recvfrom sendmsg recvmsg shutdown getsockopt setsockopt getaddrinfo freeaddrinfo gethostname
dlopen dlsym dlclose dlerror
pthread_create pthread_join pthread_exit pthread_self pthread_mutex_lock pthread_mutex_unlock
pthread_mutex_init pthread_mutex_destroy pthread_cond_wait pthread_cond_signal pthread_once
errno environ assert va_start va_end va_arg va_copy offsetof
opendir readdir closedir rewinddir scandir glob globfree fnmatch regcomp regexec regfree
atoi atof sched_yield syslog openlog closelog
""".split()

RESERVED_NAMES = frozenset(
    C_KEYWORDS | frozenset(_LIBC_POSIX) | frozenset(_LIBM)
    | {f + "f" for f in _LIBM} | {f + "l" for f in _LIBM}
)


def check_c_name(name) -> str:
    """``name`` if it can be an exported C function, else a clear error.

    Example:
        >>> check_c_name("my_grad")
        'my_grad'
        >>> check_c_name("memcpy")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: export: name 'memcpy' is a name of the C standard library, libm or POSIX ...
        >>> check_c_name("int")
        Traceback (most recent call last):
        ...
        ValueError: export: name 'int' is a C or C++ keyword; choose another, e.g. 'int_fn'
    """
    if not isinstance(name, str):
        raise TypeError(f"export: name must be a str (a C identifier), got {type(name).__name__}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not name.isascii():
        raise ValueError(f"export: name must be a C identifier (letters, digits, '_', not starting with a "
                         f"digit), got {name!r}")
    if len(name) > 200:
        raise ValueError(f"export: name must be at most 200 characters, got {len(name)}")
    if name.startswith("_"):
        # C11 7.1.3: every identifier that begins with an underscore is reserved at file scope
        raise ValueError(f"export: name {name!r} is reserved for the C implementation (names starting with "
                         f"'_' are reserved at file scope); choose another")
    if name in C_KEYWORDS:
        raise ValueError(f"export: name {name!r} is a C or C++ keyword; choose another, e.g. {name + '_fn'!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"export: name {name!r} is a name of the C standard library, libm or POSIX (an "
                         f"exported function of that name would replace it for the whole program); choose "
                         f"another, e.g. {name + '_fn'!r}")
    if re.fullmatch(r"const\d+|llvm_.*|.*__entry(_objs)?", name):
        raise ValueError(f"export: name {name!r} is used by symdl's generated code; choose another")
    return name
PTR = ir.PointerType()
_CTYPES = {"float64": "double", "float32": "float", "int64": "int64_t", "bool": "uint8_t"}


def add_c_wrapper(module: ir.Module, entry: ir.Function, name: str, n_in: int, n_out: int,
                  workspace_bytes: int) -> None:
    """Add ``int NAME(in..., out...)`` that packs the pointers and calls ``entry``."""
    from .blas import symbol_prefix
    if any(g.startswith(symbol_prefix) for g in module.globals):
        # (codegen.compiler runs exports under blas.generated_only: never reached)
        raise AssertionError("exported code must not call BLAS: its library would depend on it")
    fn = ir.Function(module, ir.FunctionType(I32, [PTR] * (n_in + n_out)), name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    slots = b.alloca(PTR, size=I32(n_in + n_out + 1))
    for k, arg in enumerate(fn.args):
        b.store(arg, b.gep(slots, [I64(k)], source_etype=PTR))
    malloc = ir.Function(module, ir.FunctionType(PTR, [I64]), "malloc")
    free = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), "free")
    work = b.call(malloc, [I64(max(workspace_bytes, 1) + 64)])
    is_null = b.icmp_unsigned("==", b.ptrtoint(work, I64), I64(0))
    with b.if_then(is_null, likely=False):
        b.ret(I32(ERR_NOMEM))
    addr = b.ptrtoint(work, I64)
    aligned = b.inttoptr(b.and_(b.add(addr, I64(63)), I64(~63)), PTR)
    b.store(aligned, b.gep(slots, [I64(n_in + n_out)], source_etype=PTR))
    rc = b.call(entry, [b.bitcast(slots, PTR)])
    b.call(free, [work])
    b.ret(rc)


def c_header(name: str, in_specs, out_specs, notes: tuple[str, ...] = ()) -> str:
    """The C header declaring the exported function and its shapes."""
    guard = f"SYMDL_{name.upper()}_H"
    lines = [f"/* Generated by symdl: {name}.", " * int " + name + "(inputs..., outputs...): one contiguous",
             " * C-order buffer per argument; returns 0 on success, 3 if an index is out",
             " * of range, 5 if the workspace cannot be allocated.",
             *(f" * {note}" for note in notes), " */",
             f"#ifndef {guard}", f"#define {guard}", "#include <stdint.h>", "#ifdef __cplusplus",
             'extern "C" {', "#endif", ""]
    params = []
    for kind, specs in (("in", in_specs), ("out", out_specs)):
        for k, (shape, dtype) in enumerate(specs):
            label = f"{kind}{k}"
            size = 1
            for d in shape:
                size *= d
            dims = ", ".join(str(d) for d in shape) or ""
            lines.append(f"#define {name.upper()}_{label.upper()}_NDIM {len(shape)}")
            lines.append(f"#define {name.upper()}_{label.upper()}_SIZE {size}")
            if shape:
                lines.append(f"static const int64_t {name}_{label}_shape[{len(shape)}] = {{{dims}}};")
            const = "const " if kind == "in" else ""
            params.append(f"{const}{_CTYPES[dtype]} *{label}")
    lines += ["", f"int {name}({', '.join(params) or 'void'});",
              f"/* threads {name} may use for large loops (default 1: single-threaded) */",
              f"void {name}_set_num_threads(int n);", "", "#ifdef __cplusplus", "}",
              "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def link_shared(object_path: Path, library_path: Path) -> None:
    """Link an object file into a shared library with the system C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("export: no C compiler (cc, gcc or clang) found to link a shared library; "
                           "export to a path ending in .o to get the object file instead")
    try:
        # -pthread: large loops may run on threads (NAME_set_num_threads)
        proc = subprocess.run([cc, "-shared", "-pthread", "-o", str(library_path), str(object_path), "-lm"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"export: running the C compiler {cc} to link {library_path} failed: {err}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"export: linking {library_path} with {cc} failed (exit {proc.returncode}):\n"
                           f"{(proc.stderr or proc.stdout).strip()[:2000]}")
