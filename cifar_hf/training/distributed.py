"""Process roles under `torchrun` / `accelerate launch`; checks that keep several machines on one command and one run
folder."""

import contextlib
import os
import socket
import time
import uuid
from pathlib import Path

from ..errors import CifarError, UsageError

SHARED_CHECK = ".shared-folder-check"
# A network file system may show another machine's new file a few seconds late; the wait can be set from outside.
SHARED_CHECK_WAIT_S = float(os.environ.get("CIFAR_HF_SHARED_FOLDER_WAIT_S", "10"))


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (or a plain run): the one process that deletes and writes shared files."""
    return int(os.environ.get("RANK", "0")) == 0


def main_process_result(accelerator, compute):
    """Run `compute` on global rank 0 only and give every process its result, or raise its error on every process.

    For decisions that read and change the shared run folder (which checkpoint to resume, removing torn ones):
    one process decides, and no process is left waiting in a collective that another one left with an error.
    """
    outcome = [None]
    if accelerator.is_main_process:
        try:
            outcome = [(compute(), None)]
        except CifarError as error:
            outcome = [(None, error)]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(outcome, from_process=0)
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


def _sees(mark: Path, token: str) -> bool:
    deadline = time.monotonic() + SHARED_CHECK_WAIT_S
    while True:
        try:
            os.listdir(mark.parent)  # revalidates the folder's cached entries on NFS
        except FileNotFoundError:  # only rank 0 creates the run folder: another machine's may not exist at all
            pass
        if mark.is_file() and mark.read_text() == token:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def check_shared_run_folder(folder: Path, accelerator) -> None:
    """Every process must see the run folder that global rank 0 writes: one folder on storage every machine sees.

    Rank 0 writes a random token into the folder and every process looks for it; when any cannot see it (a save
    folder local to each machine), every process stops with the same line instead of hanging or writing alone.
    """
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import broadcast_object_list, gather_object

    mark = Path(folder) / SHARED_CHECK
    token = [uuid.uuid4().hex]
    broadcast_object_list(token, from_process=0)
    if accelerator.is_main_process:
        mark.write_text(token[0])
    accelerator.wait_for_everyone()
    seen = gather_object([(accelerator.process_index, socket.gethostname(), str(folder), _sees(mark, token[0]))])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        mark.unlink()
    blind = [f"process {rank} on {host} ({path})" for rank, host, path, ok in seen if not ok]
    if blind:
        _, host, path, _ = seen[0]
        raise UsageError(f"{', '.join(blind)} cannot see the run folder {path} that process 0 on {host} writes: "
                         "-s/--save-folder must be on storage shared by every machine")


def check_same_command(flags: dict, world_size: int) -> None:
    """Every process must run the same command (`flags`, the same on each): each machine is started with its own
    command line, and machines given different ones would wait in a collective forever, abort inside gloo, or train a
    silently mixed run (another --seed draws other data). Every process stops with the same line."""
    import torch.distributed as dist

    from .run_record import shown

    if world_size == 1 or not dist.is_initialized():
        return
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, (socket.gethostname(), flags))
    first_host, first = everyone[0]
    for rank, (host, theirs) in enumerate(everyone):
        differing = [f"{flag} {shown(theirs.get(flag))} there, {shown(first.get(flag))} on process 0"
                     for flag in {**first, **theirs} if first.get(flag) != theirs.get(flag)]
        if differing:
            raise UsageError(f"process {rank} on {host} was started with other flags than process 0 on {first_host} "
                             f"({', '.join(differing)}): start every machine with the same command")


def check_deepspeed_support(args, training_args) -> None:
    """What this project keeps of whole weights outside DeepSpeed's engine, refused where the engine shards or holds
    them: one line instead of a traceback in the first step or at the final save."""
    plugin = training_args.deepspeed_plugin
    if plugin is None:
        return
    if args.lora_r is not None:
        raise UsageError("--lora-r: DeepSpeed's engine would save the adapted model, not the merged one this run "
                         "writes; LoRA needs no sharding (ViT-B/16 fine-tunes in 2.3 GB at batch 32): launch it with "
                         "accelerate_configs/multi_gpu.yaml")
    if args.ema_decay and plugin.hf_ds_config.is_zero3():
        raise UsageError("--ema-decay averages whole weights, which DeepSpeed ZeRO-3 shards across the processes: use "
                         "accelerate_configs/deepspeed_zero2.yaml (ZeRO-2 keeps the weights whole)")


@contextlib.contextmanager
def whole_model_loading(training_args):
    """Build the model unsharded, as every other launch does; DeepSpeed ZeRO-3 shards it when training starts.

    TrainingArguments turn Transformers' ZeRO-3 loading on whenever the config is stage 3 (`zero3_init_flag` aside),
    and that loader ignores `ignore_mismatched_sizes`: previt could not replace the checkpoint's head.
    """
    from transformers.integrations import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    plugin = training_args.deepspeed_plugin
    if plugin is None or not is_deepspeed_zero3_enabled():
        yield
        return
    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()
