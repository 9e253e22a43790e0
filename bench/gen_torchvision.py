#!/usr/bin/env python3
"""Export the INT8 benchmark's architectures to ONNX (issue 17; `npm run bench -- quantize` reads them).

    /usr/bin/python3 bench/gen_torchvision.py [--out bench/out/tv] [--opset 14] [--only name,name]

Needs Debian's PyTorch (torch 1.13, torchvision 0.14). Every model has RANDOM weights (torchvision's own
initialisation, seed 0): nothing is downloaded. The BatchNorm running statistics are then re-estimated on 64
random images in [0, 1] normalised with ImageNet's mean/std (a cumulative average, as a "recalibrated BN" would),
so activations have realistic magnitudes and the INT8 SQNR figures mean something; weights are not trained.

Written to OUT (gitignored, under bench/out/):
  <arch>.onnx       resnet18, mobilenet_v2, mobilenet_v3_small, squeezenet1_1, shufflenet_v2_x0_5, densenet121,
                    efficientnet_b0, regnet_x_400mf, mnasnet0_5: input "input" [N,3,64,64] (dynamic N) → logits
                    [N,1000], exported in eval mode (torch folds Conv+BN; DenseNet's pre-activation BNs stay)
  dbnet.onnx        the OCR stand-in: a DB-style text detector built here (a paddle2onnx PP-OCRv4 detector cannot
                    be had offline) — MobileNetV3-ish backbone (HardSwish, squeeze-excite with HardSigmoid,
                    depthwise convs), an FPN that merges 4 scales with nearest Upsample and Add, and a head of
                    Conv → BN → ReLU → ConvTranspose ×2 → Sigmoid giving a probability map [N,1,H,W]; input
                    "input" [N,3,320,320] (dynamic N)
  models.json       what was written (name, input shape, parameters, opset)
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ARCHS = [
    "resnet18",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "densenet121",
    "efficientnet_b0",
    "regnet_x_400mf",
    "mnasnet0_5",
]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def conv_bn(cin, cout, k, s=1, groups=1, act="hs"):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act == "hs":
        layers.append(nn.Hardswish())
    elif act == "relu":
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class Block(nn.Module):
    """MobileNetV3 inverted residual: 1x1 expand, depthwise kxk, optional SE, 1x1 project, residual."""

    def __init__(self, cin, exp, cout, k, s, se, act):
        super().__init__()
        self.expand = conv_bn(cin, exp, 1, act=act) if exp != cin else nn.Identity()
        self.dw = conv_bn(exp, exp, k, s, groups=exp, act=act)
        self.se = SE(exp) if se else nn.Identity()
        self.project = conv_bn(exp, cout, 1, act=None)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.res else y


class DBNet(nn.Module):
    """DB-style text detector (PP-OCR det's shape): MobileNetV3 backbone → FPN (Upsample + Add) → DB head."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2)
        cfg = [  # cin, exp, cout, k, s, se, act  (strides give 1/4, 1/8, 1/16, 1/32)
            [(16, 16, 16, 3, 1, False, "relu"), (16, 64, 24, 3, 2, False, "relu"), (24, 72, 24, 3, 1, False, "relu")],
            [(24, 72, 40, 5, 2, True, "relu"), (40, 120, 40, 5, 1, True, "relu")],
            [(40, 240, 80, 3, 2, False, "hs"), (80, 200, 80, 3, 1, False, "hs"), (80, 480, 112, 3, 1, True, "hs")],
            [(112, 672, 160, 5, 2, True, "hs"), (160, 960, 160, 5, 1, True, "hs")],
        ]
        self.stages = nn.ModuleList(nn.Sequential(*[Block(*b) for b in st]) for st in cfg)
        chans, inner = [24, 40, 112, 160], 96
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner, 1, bias=False) for c in chans)
        self.smooth = nn.ModuleList(nn.Conv2d(inner, inner // 4, 3, padding=1, bias=False) for _ in chans)
        self.head = nn.Sequential(
            nn.Conv2d(inner, inner // 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(inner // 4),
            nn.ReLU(),
            nn.ConvTranspose2d(inner // 4, inner // 4, 2, 2),
            nn.BatchNorm2d(inner // 4),
            nn.ReLU(),
            nn.ConvTranspose2d(inner // 4, 1, 2, 2),
        )

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        lat = [l(f) for l, f in zip(self.lateral, feats)]
        for i in range(3, 0, -1):  # top-down: upsample and add
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], scale_factor=2.0, mode="nearest")
        outs = [s(l) for s, l in zip(self.smooth, lat)]
        outs = [outs[0]] + [F.interpolate(o, scale_factor=2.0 ** (i + 1), mode="nearest") for i, o in enumerate(outs[1:])]
        return torch.sigmoid(self.head(torch.cat(outs, 1)))


def recalibrate_bn(model, shape, batches=4):
    """Re-estimate BN running statistics (cumulative average) on random normalised images; weights unchanged."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(batches):
            model((torch.rand(16, *shape, generator=g) - MEAN) / STD)
    model.eval()


def export(model, name, shape, out, opset, dynamic):
    torch.manual_seed(0)
    recalibrate_bn(model, shape)
    model.eval()
    x = (torch.rand(2, *shape, generator=torch.Generator().manual_seed(2)) - MEAN) / STD
    path = os.path.join(out, f"{name}.onnx")
    axes = {"input": dynamic, "output": {0: "N"}}
    torch.onnx.export(
        model, x, path, opset_version=opset, input_names=["input"], output_names=["output"], dynamic_axes=axes
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters -> {path}", file=sys.stderr)
    return {"name": name, "input": list(shape), "params": params, "opset": opset}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "tv"))
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    only = set(filter(None, a.only.split(",")))
    written = []
    for arch in ARCHS:
        if only and arch not in only:
            continue
        torch.manual_seed(0)
        m = getattr(torchvision.models, arch)(weights=None)
        written.append(export(m, arch, (3, 64, 64), a.out, a.opset, {0: "N"}))
    if not only or "dbnet" in only:
        torch.manual_seed(0)
        written.append(export(DBNet(), "dbnet", (3, 320, 320), a.out, a.opset, {0: "N"}))
    with open(os.path.join(a.out, "models.json"), "w") as f:
        json.dump(written, f, indent=1)


if __name__ == "__main__":
    main()
