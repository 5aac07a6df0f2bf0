"""Read the records of an offline wandb run file (`run-*.wandb`): a LevelDB-style log of protobuf `Record`s.

wandb no longer ships a Python reader, and `wandb sync` needs the network; this is enough to check what a run logged.
"""

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7  # the file starts with ":W&B", a 2-byte magic and a version byte; every record with crc, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    records, pending, offset = [], b"", HEADER
    while offset + HEADER <= len(data):
        if BLOCK - offset % BLOCK < HEADER:  # block trailer padding
            offset += BLOCK - offset % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[offset: offset + HEADER])
        chunk = data[offset + HEADER: offset + HEADER + length]
        offset += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        elif kind in (MIDDLE, LAST):
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def logged(path: Path) -> tuple[set, set, str]:
    """(history keys, summary keys, config as text) of an offline run file."""
    history, summary, config = set(), set(), []
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            summary |= {item.key or "/".join(item.nested_key) for item in record.summary.update}
        elif kind == "config":
            config += [f"{item.key}={item.value_json}" for item in record.config.update]
        elif kind == "run":  # the config given to wandb.init travels with the run record
            config += [f"{item.key}={item.value_json}" for item in record.run.config.update]
    return history, summary, "\n".join(config)
