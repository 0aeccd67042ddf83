"""CPU peers of looptune's scaling benchmark (bench/scaling.ts) on a machine with python3:
numpy (its bundled OpenBLAS) and torch CPU, fp32, at one thread count per process (numpy's OpenBLAS
fixes its threads when it loads, so the caller starts one process per count).

    OPENBLAS_NUM_THREADS=T OMP_NUM_THREADS=T python3 bench/peers/cpu_peers.py T "matmul 4096x4096x4096" "conv2d n1 c64 h58 w58 k64 r3 s3 stride1"

Prints one JSON object per line: {"peer", "problem", "threads", "gflops", "bestSeconds"}; a peer
that is missing prints {"peer", "error"} instead. Best of repeated runs over at least 0.5 s.
"""
import json
import re
import sys
import time

MIN_SECONDS = 0.5


def best_seconds(fn):
    fn()
    fn()
    best, total, runs = float("inf"), 0.0, 0
    while total < MIN_SECONDS or runs < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, runs = min(best, dt), total + dt, runs + 1
    return best


def parse(spec):
    m = re.fullmatch(r"matmul (\d+)x(\d+)x(\d+)", spec)
    if m:
        return ("matmul", tuple(int(x) for x in m.groups()))
    m = re.fullmatch(r"conv2d n(\d+) c(\d+) h(\d+) w(\d+) k(\d+) r(\d+) s(\d+) stride(\d+)", spec)
    if m:
        return ("conv2d", tuple(int(x) for x in m.groups()))
    raise SystemExit(f"cpu_peers.py: cannot read problem {spec!r}")


def flops(kind, d):
    if kind == "matmul":
        m, n, k = d
        return 2.0 * m * n * k
    n, c, h, w, k, r, s, stride = d
    oh, ow = (h - r) // stride + 1, (w - s) // stride + 1
    return 2.0 * n * k * oh * ow * c * r * s


def main():
    threads = int(sys.argv[1])
    specs = sys.argv[2:]
    try:
        import numpy as np
    except ImportError as e:
        np = None
        print(json.dumps({"peer": "numpy", "error": str(e)}), flush=True)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError as e:
        torch = None
        print(json.dumps({"peer": "torch", "error": str(e)}), flush=True)
    for spec in specs:
        kind, d = parse(spec)
        f = flops(kind, d)
        if kind == "matmul" and np is not None:
            m, n, k = d
            a = np.random.rand(m, k).astype(np.float32)
            b = np.random.rand(k, n).astype(np.float32)
            c = np.empty((m, n), dtype=np.float32)
            s = best_seconds(lambda: np.matmul(a, b, out=c))
            print(json.dumps({"peer": f"numpy {np.__version__} (OpenBLAS)", "problem": spec, "threads": threads, "gflops": f / s / 1e9, "bestSeconds": s}), flush=True)
        if torch is not None:
            with torch.no_grad():
                if kind == "matmul":
                    m, n, k = d
                    a, b = torch.rand(m, k), torch.rand(k, n)
                    c = torch.empty(m, n)
                    s = best_seconds(lambda: torch.matmul(a, b, out=c))
                else:
                    n, c_, h, w, k, r, s_, stride = d
                    x, wt = torch.rand(n, c_, h, w), torch.rand(k, c_, r, s_)
                    s = best_seconds(lambda: torch.nn.functional.conv2d(x, wt, stride=stride))
            print(json.dumps({"peer": f"torch {torch.__version__} CPU", "problem": spec, "threads": threads, "gflops": f / s / 1e9, "bestSeconds": s}), flush=True)


main()
