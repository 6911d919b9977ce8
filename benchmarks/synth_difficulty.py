"""How hard is the synthetic data? A pixel logistic regression against a small CNN, same clips.

The issue asks for a data set on which the classical baseline is clearly imperfect (logistic
regression on the tutorial spectrogram's pixels: AUC <= 0.93) while a small CNN still learns it
(>= 0.97 for WhaleNet at 27,000 clips). Both are measured here on the same clips and the same
90/10 split (first 90 % of the clip numbers train), for each spectrogram mode in --modes. The CNN
is deliberately small and quick: three conv 3×3 (8, 16, 32) + BatchNorm + ReLU + max-pool blocks,
a global max-pool and one logit; Adam 1e-3, batches of 64, 2 threads.

    .venv/bin/python benchmarks/synth_difficulty.py --n 30000 --epochs 4
"""

from __future__ import annotations

import argparse
import time

from upcall.audio import synth
from upcall.data import spectrogram


def logistic_auc(x_train, y_train, x_val, y_val) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    model = LogisticRegression(max_iter=300)
    model.fit(x_train.reshape(len(x_train), -1) / 255.0, y_train)
    return roc_auc_score(y_val, model.decision_function(x_val.reshape(len(x_val), -1) / 255.0))


def cnn_auc(x_train, y_train, x_val, y_val, *, epochs: int, seed: int) -> float:
    import torch
    from sklearn.metrics import roc_auc_score
    from torch import nn

    torch.manual_seed(seed)
    blocks = []
    for c_in, c_out in ((1, 8), (8, 16), (16, 32)):
        blocks += [
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
    net = nn.Sequential(*blocks, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt = torch.from_numpy(x_train[:, None] / 255.0).float()
    yt = torch.from_numpy(y_train).float()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            loss = nn.functional.binary_cross_entropy_with_logits(net(xt[idx])[:, 0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        scores = net(torch.from_numpy(x_val[:, None] / 255.0).float())[:, 0].numpy()
    return roc_auc_score(y_val, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="clips (default 6000)")
    parser.add_argument("--epochs", type=int, default=4, help="CNN epochs (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modes", default="tutorial,enhanced", help="comma-separated spectrogram modes"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    labels = synth.labels_for(args.seed, "train", args.n, synth.SynthSettings().positive_rate)
    t0 = time.perf_counter()
    samples = synth.make_clips(args.seed, labels)
    print(f"{args.n} clips generated in {time.perf_counter() - t0:.1f} s")
    n_train = int(0.9 * args.n)
    for mode in args.modes.split(","):
        images = spectrogram.compute_batch(samples, mode=mode)
        split = (images[:n_train], labels[:n_train], images[n_train:], labels[n_train:])
        t0 = time.perf_counter()
        lr = logistic_auc(*split)
        t1 = time.perf_counter()
        cnn = cnn_auc(*split, epochs=args.epochs, seed=args.seed)
        t2 = time.perf_counter()
        print(
            f"{mode}: logistic regression AUC {lr:.4f} ({t1 - t0:.0f} s), "
            f"small CNN ({args.epochs} epochs) AUC {cnn:.4f} ({t2 - t1:.0f} s), "
            f"CNN - LR = {cnn - lr:+.4f}; n={args.n}, val={args.n - n_train}"
        )


if __name__ == "__main__":
    main()
