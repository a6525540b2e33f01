"""The seed's SimpleNet (784 → 128 → 10) on synthetic data: a small, real training run for `devagent run`.

    devagent run -- python examples/train_simplenet.py --lr 3e-4 --batch-size 64 --epochs 5

Runs on the GPU when torch sees one, else on the CPU (and says so). Logs through `devagent.lab` when devagent is
installed, and always prints `epoch=… loss=… acc=…` lines, which `devagent run` also reads.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

try:
    from devagent import lab
except ImportError:  # the helper is optional
    lab = None


class SimpleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="batches per epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)} "
              f"({torch.cuda.get_device_properties(0).total_memory / 1e9:.1f} GB)")
    else:
        print("WARNING: no GPU visible — training runs on the CPU")

    # A fixed synthetic task: the label is a linear function of the input, so the loss really falls.
    teacher = torch.randn(784, 10, device=device)
    model = SimpleNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    if lab is not None:
        lab.hparams(vars(args))
    step = 0
    for epoch in range(1, args.epochs + 1):
        total, correct, seen = 0.0, 0, 0
        for _ in range(args.steps):
            x = torch.randn(args.batch_size, 784, device=device)
            y = (x @ teacher).argmax(dim=1)
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(x)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(x)
            if lab is not None:
                lab.log(step=step, loss=loss.item())
        print(f"epoch={epoch} loss={total / seen:.4f} acc={correct / seen:.4f}", flush=True)


if __name__ == "__main__":
    main()
