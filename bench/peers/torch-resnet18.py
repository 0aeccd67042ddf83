"""The GPU peer of bench/cuda-model.ts: ResNet-18 in PyTorch with cuDNN on the same GPU, fp32 math.

    python3 bench/peers/torch-resnet18.py [--batches 1,8] [--runs 50] [--warmup 5]

torchvision's resnet18 (random weights) where torchvision is installed, else the same architecture
written out below (torchvision's BasicBlock network: 7x7/2 stem, BN, ReLU, 3x3/2 max pool, four
stages of two basic blocks, 1x1 downsample + BN where the stride or width changes, global average
pool, 512x1000 classifier). Eval mode, no autograd, NCHW fp32, TF32 off for both cuDNN and
matmuls (torch.backends.cudnn.allow_tf32 = False, torch.backends.cuda.matmul.allow_tf32 = False),
cudnn.benchmark on (cuDNN picks its fastest algorithm per layer during warm-up). Two variants:
'eager' (batch norm its own kernel after each convolution, as torch runs the module) and
'bn-folded' (each batch norm folded into its convolution's weights and bias with
torch.nn.utils.fusion.fuse_conv_bn_eval, as looptune's import folds it).

Timing as bench/cuda-model.ts times the graph: the input already on the GPU, CUDA events around
one model(x) call each, best and median of --runs after --warmup untimed calls. Prints one JSON
object: the versions, the device, and per variant and batch {variant, batch, bestMs, medianMs, runs}.
"""
import argparse
import json
import statistics
import sys

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, inplanes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes, 1)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build():
    try:
        import torchvision
        return torchvision.models.resnet18(weights=None), f"torchvision {torchvision.__version__} resnet18"
    except ImportError:
        return ResNet18(), "the hand-written ResNet-18 of bench/peers/torch-resnet18.py (no torchvision)"


def fold_batch_norms(model):
    """Every conv followed by a batch norm (stem, blocks, downsamples) as one conv with a bias; the BN becomes Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model.conv1, model.bn1 = fuse_conv_bn_eval(model.conv1, model.bn1), nn.Identity()
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in layer:
            block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
            block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
            if block.downsample is not None:
                block.downsample = nn.Sequential(fuse_conv_bn_eval(block.downsample[0], block.downsample[1]))
    return model


def time_model(model, batches, runs, warmup):
    results = []
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224, device="cuda")
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        results.append({"batch": batch, "bestMs": min(times), "medianMs": statistics.median(times), "runs": len(times)})
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"peer": "torch", "error": "no CUDA device visible to torch"}))
        sys.exit(1)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model, source = build()
    model = model.cuda().eval()
    batches = [int(b) for b in args.batches.split(",")]
    results = []
    with torch.no_grad():
        for r in time_model(model, batches, args.runs, args.warmup):
            results.append({"variant": "eager", **r})
        for r in time_model(fold_batch_norms(model), batches, args.runs, args.warmup):
            results.append({"variant": "bn-folded", **r})
    print(json.dumps({
        "peer": "torch", "model": source, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "device": torch.cuda.get_device_name(0),
        "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
        "cudnnBenchmark": torch.backends.cudnn.benchmark, "batches": results,
    }))


if __name__ == "__main__":
    main()
