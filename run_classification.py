#!/usr/bin/env python
"""Train a CIFAR classifier: `python run_classification.py -m resnet` (or `accelerate launch run_classification.py`).

See `python run_classification.py --help` and the README.
"""

import sys

from cifar_hf.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
