"""Peer for bench/cuda-conv.ts: ResNet-50's conv layers in bf16, channels-last, through PyTorch's
F.conv2d (cuDNN's v9 engines with cudnn.benchmark on, the way a PyTorch user runs them), timed
with CUDA events over repeated launches; prints JSON (TFLOPS per layer, best of the samples).
    python3 bench/peers/torch-conv.py --batch 32 [--dtype bf16] > torch-conv.json
"""
import argparse, json, torch, torch.nn.functional as F

LAYERS = [  # c h k r stride pad, as bench/cuda-conv.ts's RESNET50_3X3 then RESNET50_1X1
    (64, 56, 64, 3, 1, 1), (128, 28, 128, 3, 1, 1), (256, 14, 256, 3, 1, 1), (512, 7, 512, 3, 1, 1),
    (128, 56, 128, 3, 2, 1), (256, 28, 256, 3, 2, 1), (512, 14, 512, 3, 2, 1),
    (64, 56, 256, 1, 1, 0), (256, 56, 64, 1, 1, 0), (128, 28, 512, 1, 1, 0), (512, 28, 128, 1, 1, 0),
    (256, 14, 1024, 1, 1, 0), (1024, 14, 256, 1, 1, 0), (512, 7, 2048, 1, 1, 0), (2048, 7, 512, 1, 1, 0),
]

def main():
    a = argparse.ArgumentParser()
    a.add_argument('--batch', type=int, default=32)
    a.add_argument('--dtype', default='bf16')
    args = a.parse_args()
    dt = {'bf16': torch.bfloat16, 'f16': torch.float16}[args.dtype]
    torch.backends.cudnn.benchmark = True
    out = []
    for c, h, k, r, stride, pad in LAYERS:
        x = torch.randn(args.batch, c, h, h, device='cuda', dtype=dt).to(memory_format=torch.channels_last)
        w = torch.randn(k, c, r, r, device='cuda', dtype=dt).to(memory_format=torch.channels_last)
        y = F.conv2d(x, w, stride=stride, padding=pad)
        p = y.shape[2]
        flops = 2 * args.batch * p * p * k * c * r * r
        for _ in range(5):
            F.conv2d(x, w, stride=stride, padding=pad)
        best = float('inf')
        for _ in range(5):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(20):
                F.conv2d(x, w, stride=stride, padding=pad)
            e.record()
            torch.cuda.synchronize()
            best = min(best, s.elapsed_time(e) / 20)
        spec = f'conv2d n{args.batch} c{c} h{h} w{h} k{k} r{r} s{r} stride{stride}' + (f' pad{pad}' if pad else '') + f' nhwc {args.dtype}'
        out.append({'spec': spec, 'ms': best, 'tflops': flops / best / 1e9})
    print(json.dumps({'torch': torch.__version__, 'cudnn': torch.backends.cudnn.version(), 'device': torch.cuda.get_device_name(), 'results': out}, indent=1))

main()
