"""Shared pieces of the peer benchmarks: the problems, the timing loop, the JSON record.

Pure Python (standard library only), imported by bench_torch.py and bench_jax.py, which run in
different virtual environments. The constants are copied from crates/mppi-tasks/src/*.rs; the
self-checks in the bench scripts compare each port against the hand-computed values of the
Rust unit tests.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

# ---------------------------------------------------------------- pendulum.rs (Pendulum-v1)
PEND_G = 10.0
PEND_M = 1.0
PEND_L = 1.0
PEND_DT = 0.05
PEND_MAX_TORQUE = 2.0
PEND_MAX_SPEED = 8.0

# ---------------------------------------------------------------- double_integrator.rs
DI_DT = 0.05
DI_A_MAX = 3.0
DI_GOAL = (8.0, 8.0)
DI_W_GOAL = 1.0
DI_W_VEL = 1.0
DI_W_CTRL = 0.01
DI_W_COLLISION = 1000.0
DI_MARGIN = 0.15
# (x, y, r)
DI_OBSTACLES = [
    (2.0, 2.2, 0.8),
    (4.2, 3.8, 1.0),
    (2.2, 5.2, 0.8),
    (5.6, 1.8, 0.8),
    (6.2, 6.0, 0.9),
    (4.0, 7.2, 0.7),
]

# ---------------------------------------------------------------- unicycle.rs
UNI_DT = 0.05
UNI_A_MAX = 2.0
UNI_OMEGA_MAX = 2.0
UNI_V_MIN = -1.0
UNI_V_MAX = 2.0
UNI_GOAL = (9.0, 6.0)
UNI_W_GOAL = 1.0
UNI_W_VEL = 1.0
UNI_W_ACC = 0.01
UNI_W_TURN = 0.01
UNI_W_COLLISION = 1000.0
UNI_MARGIN = 0.15
UNI_OBSTACLES = [
    (2.5, 0.3, 0.8),
    (4.0, 3.0, 1.0),
    (6.5, 1.5, 0.9),
    (6.5, 4.8, 0.8),
    (2.0, 4.5, 0.7),
    (8.8, 3.6, 0.6),
]

# ---------------------------------------------------------------- the benchmark problems
# noise_sigma is the per-dimension standard deviation of our MppiConfig (the task defaults);
# both peers take a covariance matrix, so they get diag(sigma^2). lambda = 1 everywhere. The
# control bounds are the tasks' u_min/u_max. x0 is the task's initial_state().
PROBLEMS = {
    "pendulum_t30_k1000": dict(
        model="pendulum", K=1000, T=30, nx=2, nu=1, sigma=[1.0], lam=1.0,
        u_min=[-PEND_MAX_TORQUE], u_max=[PEND_MAX_TORQUE], x0=[math.pi, 0.0],
        label="Pendulum-v1, T = 30, K = 1000",
    ),
    "pendulum_t15_k100": dict(
        model="pendulum", K=100, T=15, nx=2, nu=1, sigma=[1.0], lam=1.0,
        u_min=[-PEND_MAX_TORQUE], u_max=[PEND_MAX_TORQUE], x0=[math.pi, 0.0],
        label="Pendulum-v1, T = 15, K = 100",
    ),
    "double_integrator_t50_k4096": dict(
        model="double_integrator", K=4096, T=50, nx=4, nu=2, sigma=[2.0, 2.0], lam=1.0,
        u_min=[-DI_A_MAX, -DI_A_MAX], u_max=[DI_A_MAX, DI_A_MAX], x0=[0.0, 0.0, 0.0, 0.0],
        label="double integrator among 6 discs (nx = 4, nu = 2), T = 50, K = 4096",
    ),
    "unicycle_t50_k4096": dict(
        model="unicycle", K=4096, T=50, nx=4, nu=2, sigma=[1.0, 1.0], lam=1.0,
        u_min=[-UNI_A_MAX, -UNI_OMEGA_MAX], u_max=[UNI_A_MAX, UNI_OMEGA_MAX],
        x0=[0.0, 0.0, 0.0, 0.0],
        label="unicycle among 6 discs (nx = 4, nu = 2), T = 50, K = 4096",
    ),
}

# Hand-computed values from the Rust unit tests (and Pendulum-v1): (x, u, expected next x or
# None, expected running cost or a (">", bound) pair). Each port must reproduce them.
CHECKS = {
    "pendulum": [
        # from rest at pi/2 (horizontal) with u = 1: thdot' = (15 * 1 + 3 * 1) * 0.05 = 0.9
        ([math.pi / 2, 0.0], [1.0], [math.pi / 2 + 0.9 * 0.05, 0.9],
         (math.pi / 2) ** 2 + 0.001),
        # torque clipped to 2, speed clipped to 8; cost wraps the angle (3 pi -> -pi)
        ([0.0, 7.99], [5.0], [8.0 * 0.05, 8.0], 0.1 * 7.99 ** 2 + 0.001 * 4.0),
        ([3.0 * math.pi, 0.0], [0.0], None, math.pi ** 2),
    ],
    "double_integrator": [
        ([1.0, 2.0, 0.5, -1.0], [2.0, -10.0], [1.0275, 1.94625, 0.6, -1.15], None),
        ([8.0, 8.0, 0.0, 0.0], [0.0, 0.0], None, 0.0),
        ([5.0, 12.0, 1.0, 0.0], [1.0, 0.0], None, 5.0 + 1.0 / 26.0 + 0.01),
        ([2.0, 2.2, 0.0, 0.0], [0.0, 0.0], None, (">", DI_W_COLLISION)),
    ],
    "unicycle": [
        ([1.0, 2.0, math.pi / 2, 1.0], [1.0, 5.0], [1.0, 2.05, math.pi / 2 + 0.1, 1.05], None),
        ([0.0, 0.0, 0.0, 1.99], [2.0, 0.0], [1.99 * 0.05, 0.0, 0.0, UNI_V_MAX], None),
        ([9.0, 6.0, 1.0, 0.0], [0.0, 0.0], None, 0.0),
        ([6.0, 10.0, 0.0, 1.0], [1.0, -1.0], None, 5.0 + 1.0 / 26.0 + 0.02),
        ([4.0, 3.0, 0.0, 0.0], [0.0, 0.0], None, (">", UNI_W_COLLISION)),
    ],
}


def run_checks(model, step_fn, cost_fn, tol):
    """step_fn(x list, u list) -> list, cost_fn(x list, u list) -> float, for ONE state."""
    for x, u, nxt, c in CHECKS[model]:
        if nxt is not None:
            got = step_fn(x, u)
            if any(abs(a - b) > tol * max(1.0, abs(b)) for a, b in zip(got, nxt)):
                raise SystemExit(f"{model}: step({x}, {u}) = {got}, expected {nxt}")
        if c is not None:
            got = cost_fn(x, u)
            ok = got > c[1] if isinstance(c, tuple) else abs(got - c) <= tol * max(1.0, abs(c))
            if not ok:
                raise SystemExit(f"{model}: cost({x}, {u}) = {got}, expected {c}")


def parse_args(library, extra=None):
    """The scripts' command line. `extra(parser)` may add script-specific options.

    With --serve the script becomes a long-lived server (see `serve`): it needs no --out, and
    from here on its prints go to stderr, stdout being kept for the protocol.
    """
    p = argparse.ArgumentParser(description=f"{library} peer benchmark")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--problems", default=",".join(PROBLEMS),
                   help="comma-separated subset of: " + ", ".join(PROBLEMS))
    p.add_argument("--blocks", type=int, default=15, help="timing blocks (default 15)")
    p.add_argument("--calls", type=int, default=0,
                   help="command() calls per block; 0 = auto (about 0.2 s per block, 5..50)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls first (default 20)")
    p.add_argument("--out", help="JSON file to write (required unless --serve)")
    p.add_argument("--serve", action="store_true",
                   help="server mode for interleaved.py: build and warm up the controllers, then "
                        "answer JSON-line requests on stdin/stdout (see common.serve)")
    p.add_argument("--block-seconds", type=float, default=0.15,
                   help="--serve only: the default block length in seconds (default 0.15)")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    if not args.serve and not args.out:
        p.error("--out is required (unless --serve)")
    if args.serve:
        _claim_stdout()
    args.problems = [s for s in args.problems.split(",") if s]
    for name in args.problems:
        if name not in PROBLEMS:
            p.error(f"unknown problem {name!r}")
    return args


def measure(call, blocks, calls, warmup):
    """Time `call()` (one synchronized command()).

    `warmup` untimed calls, then `blocks` blocks of `calls` timed calls each; a block's value is
    the median of its calls. Returns the per-block medians in seconds and the calls per block.
    """
    for _ in range(warmup):
        call()
    if calls <= 0:
        t0 = time.perf_counter()
        call()
        one = time.perf_counter() - t0
        calls = int(min(50, max(5, 0.2 / max(one, 1e-9))))
    per_block = []
    for _ in range(blocks):
        ts = []
        for _ in range(calls):
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
        per_block.append(statistics.median(ts))
    return per_block, calls


def record(name, per_block, calls, warmup, extra=None):
    spec = PROBLEMS[name]
    med = statistics.median(per_block)
    kt = spec["K"] * spec["T"]
    out = dict(
        problem=name,
        label=spec["label"],
        K=spec["K"],
        T=spec["T"],
        blocks=len(per_block),
        calls_per_block=calls,
        warmup_calls=warmup,
        median_ms=med * 1e3,
        min_ms=min(per_block) * 1e3,
        max_ms=max(per_block) * 1e3,
        block_medians_ms=[t * 1e3 for t in per_block],
        msamplesteps_per_s=kt / med / 1e6,
    )
    if extra:
        out.update(extra)
    print(f"  {name:30s} {out['median_ms']:9.3f} ms  [{out['min_ms']:.3f} .. "
          f"{out['max_ms']:.3f}]  {out['msamplesteps_per_s']:7.2f} M sample-steps/s  "
          f"({len(per_block)} blocks x {calls} calls)", flush=True)
    return out


def environment():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return dict(
        python=sys.version.split()[0],
        python_executable=sys.executable,
        platform=platform.platform(),
        cpu=cpu,
        cpu_affinity=affinity,
        env={k: os.environ.get(k) for k in
             ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS")},
    )


def write(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- server mode (interleaved.py)
# The protocol goes over the original stdout; everything else the process prints (our progress
# lines, library warnings, even C-level writes to fd 1) goes to stderr.
_PROTO = None


def _claim_stdout():
    global _PROTO
    if _PROTO is not None:
        return
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _PROTO = os.fdopen(fd, "w", buffering=1)


def _reply(obj):
    _PROTO.write(json.dumps(obj) + "\n")
    _PROTO.flush()


def block_calls(call, seconds, lo=5, hi=20000):
    """Calls per block for about `seconds` of calls: the median of 5 calls, clamped to lo..hi."""
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    one = statistics.median(ts)
    return int(min(hi, max(lo, round(seconds / max(one, 1e-9))))), one


def serve(library, dtype, calls, info=None, block_seconds=0.15, warmup=20):
    """Answer timing requests on stdin/stdout, one JSON object a line, until EOF or "quit".

    `calls` maps a key ("problem", or "problem/variant") to a zero-argument function doing one
    synchronized control step. Each is warmed up here (`warmup` untimed calls) and its default
    block size set to about `block_seconds` of calls (5..20000 calls). Then the server says

        {"ready": true, "library": ..., "dtype": ..., "keys": {key: {"calls": n,
         "first_call_s": ...}}, "info": {...}}

    and answers

        {"problem": P, "variant": V (optional), "dtype": D (optional, checked), "calls": n
         (optional, default: the key's block size), "times": true (optional)}

    with one block of n timed calls, timed as common.measure times them (perf_counter around
    each call; the block's value is the median of its calls):

        {"key": ..., "calls": n, "median_s": ..., "mean_s": ..., "min_s": ..., "max_s": ...,
         "block_s": wall time of the block, "times_s": [...] (if asked)}

    {"cmd": "ping"} answers {"pong": true}; {"cmd": "quit"} (or EOF) ends the server. An error
    answers {"error": "..."} and the server goes on.
    """
    if _PROTO is None:
        _claim_stdout()
    keys = {}
    for key, call in calls.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            call()
        warm_s = time.perf_counter() - t0
        n, one = block_calls(call, block_seconds)
        keys[key] = dict(calls=n, call_s_estimate=one, warmup_calls=warmup, warmup_s=warm_s)
        print(f"  [{library} {dtype}] {key}: warm ({warmup} calls, {warm_s:.2f} s), "
              f"{one * 1e3:.3f} ms/call -> {n} calls per block", flush=True)
    _reply(dict(ready=True, library=library, dtype=dtype, keys=keys, info=info or {},
                machine=environment(), block_seconds=block_seconds))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                _reply(dict(bye=True))
                break
            if cmd == "ping":
                _reply(dict(pong=True, loadavg=list(os.getloadavg())))
                continue
            if req.get("dtype", dtype) != dtype:
                raise ValueError(f"this server runs {dtype}, not {req['dtype']}")
            key = req["problem"] + (f"/{req['variant']}" if req.get("variant") else "")
            if key not in calls:
                raise KeyError(f"unknown key {key!r}; this server has {sorted(calls)}")
            call = calls[key]
            n = int(req.get("calls") or keys[key]["calls"])
            ts = []
            b0 = time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                call()
                ts.append(time.perf_counter() - t0)
            block_s = time.perf_counter() - b0
            out = dict(key=key, calls=n, median_s=statistics.median(ts),
                       mean_s=sum(ts) / n, min_s=min(ts), max_s=max(ts), block_s=block_s)
            if req.get("times"):
                out["times_s"] = ts
            _reply(out)
        except Exception as e:  # noqa: BLE001 - report and go on
            _reply(dict(error=f"{type(e).__name__}: {e}"))
