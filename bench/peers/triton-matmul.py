"""Triton's autotuned matmul at a typed precision: the peer of bench/cuda-tc.ts (issue #18).

C[M,N] (fp32) = A[M,K] . B[K,N] with A, B row-major in bf16 or f16 (fp32 accumulation), or fp32
inputs multiplied as tf32 (tl.dot input_precision="tf32"). The kernel is Triton's tutorial matmul
(grouped program order) autotuned over 12 block configurations, the way a Triton user writes it.
torch.matmul (cuBLAS through PyTorch, output in the input type) at the same precision is timed beside it. Prints JSON:
{"peer": "triton", "triton": version, "torch": version, "results": [{spec, dtype, m, n, k, tflops,
ms, config, torch_tflops, max_rel_error}]}; spec is looptune's (`matmul MxNxK bf16`).

  python3 bench/peers/triton-matmul.py --types bf16,f16,tf32 --shapes 2048x2048x2048,4096x4096x4096
"""
import argparse
import json
import sys

import torch
import triton
import triton.language as tl


def configs():
    out = []
    for bm, bn, bk, stages, warps in [
        (128, 256, 64, 3, 8), (256, 128, 64, 3, 8), (256, 64, 64, 4, 4), (64, 256, 64, 4, 4),
        (128, 128, 64, 4, 4), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4), (128, 32, 64, 4, 4),
        (64, 32, 64, 5, 2), (32, 64, 64, 5, 2), (128, 128, 32, 4, 4), (128, 256, 32, 3, 8),
    ]:
        out.append(triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP": 8}, num_stages=stages, num_warps=warps))
    return out


@triton.autotune(configs=configs(), key=["M", "N", "K", "TF32"])
@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, TF32: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    in_group = GROUP * num_n
    group = pid // in_group
    first_m = group * GROUP
    size_m = min(num_m - first_m, GROUP)
    pid_m = first_m + ((pid % in_group) % size_m)
    pid_n = (pid % in_group) // size_m
    rm = (pid_m * BM + tl.arange(0, BM)) % M
    rn = (pid_n * BN + tl.arange(0, BN)) % N
    rk = tl.arange(0, BK)
    a = a_ptr + rm[:, None] * K + rk[None, :]
    b = b_ptr + rk[:, None] * N + rn[None, :]
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        x = tl.load(a, mask=rk[None, :] < K - k * BK, other=0.0)
        y = tl.load(b, mask=rk[:, None] < K - k * BK, other=0.0)
        if TF32:
            acc = tl.dot(x, y, acc, input_precision="tf32")
        else:
            acc = tl.dot(x, y, acc)
        a += BK
        b += BK * N
    cm = pid_m * BM + tl.arange(0, BM)
    cn = pid_n * BN + tl.arange(0, BN)
    c = c_ptr + cm[:, None] * N + cn[None, :]
    tl.store(c, acc, mask=(cm[:, None] < M) & (cn[None, :] < N))


def run(dtype, m, n, k):
    torch_type = {"bf16": torch.bfloat16, "f16": torch.float16, "tf32": torch.float32}[dtype]
    torch.manual_seed(0)
    a = (torch.rand(m, k, device="cuda") * 2 - 1).to(torch_type)
    b = (torch.rand(k, n, device="cuda") * 2 - 1).to(torch_type)
    c = torch.empty(m, n, device="cuda", dtype=torch.float32)
    tf32 = dtype == "tf32"
    grid = lambda meta: (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)
    matmul_kernel[grid](a, b, c, m, n, k, tf32)
    ms = triton.testing.do_bench(lambda: matmul_kernel[grid](a, b, c, m, n, k, tf32), warmup=25, rep=200)
    best = matmul_kernel.best_config
    ref = a.double() @ b.double() if not tf32 else None
    err = float(((c.double() - ref).abs().max() / ref.abs().max()).item()) if ref is not None else None
    # torch.matmul at the same input precision (cuBLAS; its output is in the input type)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    f = lambda: torch.matmul(a, b)
    torch_ms = triton.testing.do_bench(f, warmup=25, rep=200)
    flops = 2.0 * m * n * k
    return {
        "spec": f"matmul {m}x{n}x{k} {dtype}", "dtype": dtype, "m": m, "n": n, "k": k,
        "tflops": flops / ms / 1e9, "ms": ms,
        "config": f"BM{best.kwargs['BM']} BN{best.kwargs['BN']} BK{best.kwargs['BK']} stages{best.num_stages} warps{best.num_warps}",
        "torch_tflops": flops / torch_ms / 1e9, "max_rel_error": err,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--types", default="bf16,f16,tf32")
    ap.add_argument("--out", default=None, help="also write the JSON here after every problem (a partial file survives a timeout)")
    ap.add_argument("--shapes", default="2048x2048x2048,4096x4096x4096,8192x8192x8192,768x3072x128,3072x768x128,768x768x128,128x768x768,128x3072x768,128x768x3072")
    args = ap.parse_args()
    results = []
    for dtype in args.types.split(","):
        for shape in args.shapes.split(","):
            m, n, k = (int(x) for x in shape.lower().split("x"))
            r = run(dtype, m, n, k)
            print(f"[triton] {r['spec']}: {r['tflops']:.1f} TFLOPS ({r['config']}), torch {r['torch_tflops']:.1f}", file=sys.stderr)
            results.append(r)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"peer": "triton", "triton": triton.__version__, "torch": torch.__version__, "results": results}, f, indent=1)
    print(json.dumps({"peer": "triton", "triton": triton.__version__, "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
