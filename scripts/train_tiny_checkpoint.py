"""Train a small two-stream checkpoint on real pose windows, so INT8/fp16 agreement is measured on a
model with real decision margins (an untrained one has none).

Data: the shipped MediaPipe keypoints of the two public ST-GCN videos; label = which video.
A few CPU minutes:  python scripts/train_tiny_checkpoint.py -o trained.pt [--epochs 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stgcn_rt.data import real_skeletons, skeleton_windows
from stgcn_rt.model.checkpoint import save_checkpoint
from stgcn_rt.model.graph import spatial_adjacency
from stgcn_rt.model.layouts import get_layout
from stgcn_rt.model.network import ModelConfig, build_model


def dataset(stride: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    skeletons = real_skeletons()
    names = sorted(skeletons)
    windows, labels = [], []
    for label, name in enumerate(names):
        w = skeleton_windows(skeletons[name], 150, stride)
        windows.append(w)
        labels.append(np.full(len(w), label))
    return np.concatenate(windows), np.concatenate(labels), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-o", "--output", default="trained.pt")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    windows, labels, names = dataset(args.stride)
    config = ModelConfig(num_classes=len(names), classes=names)
    model = build_model(config, torch.tensor(spatial_adjacency(get_layout(config.layout))), dropout=0.2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(windows))
        total = 0.0
        for i in range(0, len(order), 8):
            idx = order[i:i + 8]
            x = torch.from_numpy(windows[idx])
            x = x + 0.005 * torch.randn_like(x) * (x != 0)  # keypoint jitter
            loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(labels[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(order):.4f} ({time.time() - start:.0f} s)")
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(windows)).argmax(1).numpy() == labels).mean())
    print(f"training accuracy {accuracy:.1%} on {len(windows)} windows")
    save_checkpoint(model, config, args.output,
                    note=f"tiny checkpoint trained {args.epochs} epochs on {len(windows)} windows of the "
                         f"shipped keypoints (label = video); for precision checks only")


if __name__ == "__main__":
    main()
