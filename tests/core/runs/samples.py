"""Sample inputs shared by the run-summary tests: a traceback at the end of a run's output, a training script."""

TRACEBACK = [
    "epoch 2 loss=0.41",
    "Traceback (most recent call last):",
    '  File "/workspace/train.py", line 88, in <module>',
    "    main()",
    '  File "/workspace/train.py", line 71, in main',
    "    raise ValueError(f'bad shape {x.shape}')",
    "ValueError: bad shape torch.Size([64, 3])",
]

TRAIN_SCRIPT = '''\
"""Train a ResNet on CIFAR-10."""
import argparse
import os

import torch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", help="where CIFAR-10 lives")
    parser.add_argument("--lr", "--learning-rate", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--batch-size", "-b", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--wd", dest="weight_decay", type=float, default=0.01)
    parser.add_argument("--amp", action="store_true", help="mixed precision")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 4)))
    parser.add_argument("--out", default=os.environ.get("OUT_DIR", "runs/"))
    model = parser.add_argument_group("model")
    model.add_argument("--depth", type=int, default=18)
    parser.add_argument_group("data").add_argument("--augment", default="none")
    parser.add_argument("--layers", nargs="+", type=int, default=[64,
                                                                  128])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--version", action="version", version="1.0")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed or 0)


if __name__ == "__main__":
    main()
'''
