"""A map-style dataset over uint8 image tensors that hands out whole batches.

`DataLoader` calls `__getitems__` with the batch's indices, so a batch is one tensor gather rather than
`batch_size` Python calls; the Trainer's samplers (seeded shuffling, distributed sharding, resume skipping) keep
working unchanged on top of it.
"""

import numpy as np
import torch

from .loading import ImageArrays


class ImageTensorDataset(torch.utils.data.Dataset):
    def __init__(self, arrays: ImageArrays):
        # (N, H, W, C) -> (N, C, H, W): the layout the models and the batch transforms expect.
        self.pixels = torch.from_numpy(np.ascontiguousarray(arrays.pixels.transpose(0, 3, 1, 2)))
        self.labels = torch.from_numpy(np.asarray(arrays.labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {"pixel_values": self.pixels[rows], "labels": self.labels[rows]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def collate_batch(batch):
    """The DataLoader's collate_fn: `__getitems__` already returns a batch; single items are stacked."""
    if isinstance(batch, dict):
        return batch
    return {key: torch.stack([item[key] for item in batch]) for key in batch[0]}
