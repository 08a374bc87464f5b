"""Security battery for the disk cache (SPEC §9.3): plant, truncate, flip,
link (to /dev/zero, to another entry), FIFO and directory entries, and an
attacker racing concurrent writers, all across processes with timeouts.

Asserted for every case: the compiled function gives the right answer (the
hand-derived value and gradient of y = sum((x2 - x1^2)^2 + k (1 - x1)^2)),
a damaged entry is a miss that is rebuilt, and no process dies or hangs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COMMON = """
import hashlib, json, os, sys, time
from pathlib import Path
import numpy as np
import symdl
from symdl.compiler import pipeline as backend

POINTS = [(2.0, 2.0), (0.5, -1.25)]

def make_loss(k):
    def loss(x1, x2):
        y = symdl.sum((x2 - x1 ** 2) ** 2 + k * (1 - x1) ** 2)
        g1, g2 = symdl.dlgradient(y, x1, x2)
        return y, g1, g2
    return loss

def reference(k, x1, x2):
    return [(x2 - x1 ** 2) ** 2 + k * (1 - x1) ** 2, -4 * x1 * (x2 - x1 ** 2) - 2 * k * (1 - x1),
            2 * (x2 - x1 ** 2)]

def compile_and_check(k):
    '''(compiled, disk hits) of one compile of make_loss(k); exits if a result is wrong.'''
    before = dict(backend.STATS)
    f = symdl.compile(make_loss(k), 2.0, 2.0)
    for x1, x2 in POINTS:
        got = [float(np.asarray(v)) for v in f(x1, x2)]
        want = reference(k, x1, x2)
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            print(json.dumps({"WRONG": [k, x1, x2, got, want]}))
            sys.exit(3)
    return backend.STATS["compiled"] - before["compiled"], backend.STATS["disk_hits"] - before["disk_hits"]

def entries(cache):
    return sorted(p for p in Path(cache).rglob("*.o") if not p.name.startswith(".tmp-"))
"""

ATTACKS = COMMON + """
cache = os.environ["SYMDL_CACHE_DIR"]
scratch = Path(sys.argv[1])
compile_and_check(2.0)                       # another entry, for links and foreign copies
(other,) = entries(cache)
compile_and_check(1.0)
(victim,) = [p for p in entries(cache) if p != other]
good = victim.read_bytes()
size = len(good)

def remove(p):
    if p.is_dir() and not p.is_symlink():
        import shutil
        shutil.rmtree(p)
    elif os.path.lexists(p):
        p.unlink()

def put(data):
    remove(victim)
    victim.write_bytes(data)

def flip(bit):
    b = bytearray(good)
    b[bit // 8] ^= 1 << (bit % 8)
    put(bytes(b))

def symlink(target):
    remove(victim)
    victim.symlink_to(target)

def fifo():
    remove(victim)
    os.mkfifo(victim)

def directory():
    remove(victim)
    victim.mkdir()
    (victim / "inside").write_bytes(good)

def planted_sha():
    # the other entry's code and header under the victim's key, checksum recomputed
    magic_end = good.index(b"\\n") + 1
    n = int(good[magic_end:magic_end + 16])
    header = json.loads(good[magic_end + 16:magic_end + 16 + n])
    theirs = other.read_bytes()
    m = int(theirs[magic_end:magic_end + 16])
    their_header = json.loads(theirs[magic_end + 16:magic_end + 16 + m])
    code = theirs[magic_end + 16 + m:-64]
    head = json.dumps(dict(their_header, key=header["key"], name=header["name"]), sort_keys=True).encode()
    body = b"%016d" % len(head) + head + code
    put(good[:magic_end] + body + hashlib.sha256(body).hexdigest().encode())

def hard_link_to_other():
    remove(victim)
    os.link(other, victim)

def chown_other():
    put(good)
    os.chown(victim, 12345, 12345)

copy = scratch / "copy.o"
copy.write_bytes(good)
attacks = {
    "empty": lambda: put(b""),
    "garbage": lambda: put(os.urandom(size)),
    "appended": lambda: put(good + b"x"),
    "other entry's bytes": lambda: put(other.read_bytes()),
    "planted with SHA-256": planted_sha,
    "hard link to another entry": hard_link_to_other,
    "symlink to /dev/zero": lambda: symlink("/dev/zero"),
    "symlink to another entry": lambda: symlink(other),
    "symlink to a valid copy": lambda: symlink(copy),
    "fifo": fifo,
    "directory": directory,
}
def device():
    # a character device node like /dev/zero (1, 5), made here in the cache
    import stat
    remove(victim)
    os.mknod(victim, 0o600 | stat.S_IFCHR, os.makedev(1, 5))

if os.geteuid() == 0:
    attacks["owned by another user"] = chown_other
    attacks["character device"] = device
for cut in (1, 20, 37, size // 3, size // 2, size - 65, size - 64, size - 1):
    attacks[f"truncated to {cut}"] = (lambda c: lambda: put(good[:c]))(cut)
bits = size * 8
for bit in sorted({0, 7, 8 * 21, 8 * 30, 8 * 40, bits // 4, bits // 3, bits // 2, 2 * bits // 3, bits - 8 * 64,
                   bits - 8 * 33, bits - 1}):
    attacks[f"bit {bit} flipped"] = (lambda b: lambda: flip(b))(bit)

out = {}
for name, attack in attacks.items():
    attack()
    first = compile_and_check(1.0)
    again = compile_and_check(1.0)
    out[name] = [first, again]
print(json.dumps(out))
"""


def _env(cache: Path, tmp_path: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), SYMDL_CACHE_DIR=str(cache), HOME=str(tmp_path / "home"),
                XDG_CACHE_HOME=str(tmp_path / "xdg"))


def test_attacks_on_an_entry(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ATTACKS), str(tmp_path)],
                          env=_env(cache, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out) >= 30
    # every attack: a miss (compiled once, no disk hit), then the rebuilt entry is a hit
    bad = {name: v for name, v in out.items() if v != [[1, 0], [0, 1]]}
    assert not bad, bad


WRITER = COMMON + """
ks = [float(k) for k in sys.argv[1].split(",")]
rounds = int(sys.argv[2])
n = 0
for _ in range(rounds):
    for k in ks:
        compile_and_check(k)
        n += 1
print(json.dumps({"checked": n}))
"""

ATTACKER = COMMON + """
import random, shutil
cache, stop = Path(sys.argv[1]), Path(sys.argv[2])
rng = random.Random(0)
n = 0
deadline = time.time() + 150
while not stop.exists() and time.time() < deadline:
    found = entries(cache)
    if not found:
        time.sleep(0.01)
        continue
    victim = rng.choice(found)
    try:
        data = victim.read_bytes() if victim.is_file() and not victim.is_symlink() else b"x" * 100
        how = rng.randrange(7)
        if victim.is_dir() and not victim.is_symlink():
            shutil.rmtree(victim)
        elif os.path.lexists(victim):
            victim.unlink()
        if how == 0:
            victim.write_bytes(data[: rng.randrange(len(data) + 1)])
        elif how == 1:
            b = bytearray(data)
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
            victim.write_bytes(bytes(b))
        elif how == 2:
            os.mkfifo(victim)
        elif how == 3:
            victim.symlink_to("/dev/zero")
        elif how == 4:
            victim.mkdir()
        elif how == 5:
            victim.write_bytes(os.urandom(len(data)))
        else:
            (victim.parent / f".tmp-junk{n}.o").write_bytes(b"left by a killed writer")
        n += 1
    except OSError:
        pass   # raced with a writer: fine
    time.sleep(0.002)
print(json.dumps({"attacks": n}))
"""


def test_attacker_racing_concurrent_writers(tmp_path):
    cache = tmp_path / "cache"
    env = _env(cache, tmp_path)
    stop = tmp_path / "stop"
    attacker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(ATTACKER), str(cache), str(stop)], env=env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plans = ["1,2,3", "3,2,1", "2,3,1"]
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), ks, "3"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ks in plans]
    try:
        results = [w.communicate(timeout=180) for w in writers]
        stop.write_text("stop")
        a_out, a_err = attacker.communicate(timeout=60)
    finally:
        stop.write_text("stop")
        for p in (*writers, attacker):
            if p.poll() is None:
                p.kill()
    for w, (out, err) in zip(writers, results):
        assert w.returncode == 0, f"writer died or saw a wrong result ({w.returncode}):\n{out}\n{err[-3000:]}"
        assert json.loads(out.strip().splitlines()[-1]) == {"checked": 9}
    assert attacker.returncode == 0, a_err
    assert json.loads(a_out.strip().splitlines()[-1])["attacks"] > 0


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    cache = tmp_path / "cache"
    env = _env(cache, tmp_path)
    code = textwrap.dedent(WRITER)
    subprocess.run([sys.executable, "-c", code, "1", "1"], env=env, cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    # a writer killed before its rename: what it leaves behind
    user = cache / f"u{os.geteuid()}"
    (shard,) = (user / "v2").iterdir()
    stale, fresh, key_tmp = shard / ".tmp-killed.o", shard / ".tmp-writing.o", user / ".tmp-key-killed"
    old = time.time() - 3600
    for p in (stale, fresh, key_tmp):
        p.write_bytes(b"half an entry")
    for p in (stale, key_tmp):
        os.utime(p, (old, old))
    subprocess.run([sys.executable, "-c", code, "2", "1"], env=env, cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    assert not stale.exists() and not key_tmp.exists()
    assert fresh.exists()         # may be another process's write in progress
