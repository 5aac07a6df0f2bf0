"""An Optuna study around the project's own training run: every trial is a complete run folder.

Optuna is used directly rather than through `Trainer.hyperparameter_search`: that API creates the study on every call
and counts `n_trials` per call (so a restarted search cannot stop at a total), names its folders `run-<n>` without
our results.json, model card and image processor, and reports to the pruner through its own objective. Here the
objective is `train_once`, so `trial-<n>/` is exactly the folder `cifar-hf train` writes.

Scale is Optuna's own: every worker that opens the same storage takes the next trial of the same study. The default
storage is a journal file in the study folder, so a stopped study continues with the same command.
"""

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..errors import CifarError, InputError, Preempted, UsageError, first_line
from ..training import checkpoints, run_record
from ..training.recipes import get_recipe
from ..training.run import train_once
from .space import suggest

logger = logging.getLogger(__name__)

JOURNAL = "study.journal"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise InputError('cifar-hf tune needs Optuna: pip install -e ".[tune]" (or pip install optuna)') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str | None, study_folder: Path):
    """(storage, lock): an RDB URL (`sqlite:///...`, `postgresql://...`) or a journal file path (default: ours).

    The lock guards "count the trials, then take one" so that workers sharing a journal file never run more trials
    than asked; an RDB has no file to lock, so there a trial taken past the total is recorded as failed, not run.
    """
    optuna = import_optuna()
    if url and "://" in url:
        try:
            return optuna.storages.RDBStorage(url), contextlib.nullcontext()
        except Exception as error:  # sqlalchemy raises many kinds for a bad URL or an unreachable server
            raise UsageError(f"--storage {url}: cannot open it ({first_line(error)})") from None
    path = Path(url) if url else study_folder / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = optuna.storages.journal
    backend = journal.JournalFileBackend(str(path), lock_obj=journal.JournalFileOpenLock(str(path)))
    return optuna.storages.JournalStorage(backend), FileLock(journal.JournalFileOpenLock(f"{path}.budget"))


class FileLock:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()

    def __exit__(self, *exc):
        self.lock.release()


HEARTBEAT_S = 60  # how often a running trial writes its heartbeat into the storage


def pruning_callback(trial):
    """A TrainerCallback: each epoch's validation accuracy goes to the pruner, which may stop the run there;
    meanwhile a heartbeat in the storage tells workers on other machines that the trial's worker is alive."""
    from transformers import TrainerCallback

    class ReportToPruner(TrainerCallback):
        pruned_at = None  # (epoch, accuracy) where the pruner stopped the run
        last_beat = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if time.time() - self.last_beat > HEARTBEAT_S:
                self.last_beat = time.time()
                trial.set_user_attr("heartbeat", self.last_beat)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            epoch, accuracy = round(state.epoch), metrics["eval_accuracy"]
            trial.report(accuracy, epoch)
            if trial.should_prune():
                self.pruned_at = (epoch, accuracy)
                control.should_training_stop = True

    return ReportToPruner()


def counts_toward_total(trial) -> bool:
    """Every trial counts except those replaced by a retry (preempted, worker died) or taken past the total."""
    return not trial.user_attrs.get("not_counted")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Study:
    """One worker of a study; `run()` takes trials until the study holds `total` of them, training on `data`."""

    data = None  # the CifarData every trial trains on, set once the storage has opened
    trial_flags = None  # the flags every trial trains with (run_record.defining_flags), see check_trial_flags

    def __init__(self, args, training_flags: dict, folder: Path, space: dict, total: int, storage_url=None,
                 study_name=None, prune_after: int = 5, stale_after: float = 1800):
        optuna = import_optuna()
        self.optuna, self.args, self.flags, self.folder = optuna, args, training_flags, folder
        self.space, self.total, self.stale_after = space, total, stale_after
        self.storage, self.lock = open_storage(storage_url, folder)
        self.pruning = prune_after >= 0
        pruners = optuna.pruners
        pruner = pruners.MedianPruner(n_startup_trials=prune_after) if self.pruning else pruners.NopPruner()
        self.study = optuna.create_study(
            storage=self.storage, study_name=study_name or folder.name, direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=args.seed), pruner=pruner, load_if_exists=True,
        )
        if "model" not in self.study.user_attrs:  # a refused command leaves the storage as it was
            self.study.set_user_attr("model", args.model)
        self.host, self.pid = socket.gethostname(), os.getpid()

    def check_trial_flags(self, flags: dict, record: bool = False) -> None:
        """Every trial of a study trains with the same flags (the searched values aside). A worker or command with
        other flags than those recorded is one line: checked before any data loads, and again, with `record`, when
        a trial is taken (under the storage's lock: of two workers started at once, the second is refused). The
        first trial records them."""
        self.trial_flags = flags
        recorded = self.study.user_attrs.get("run_flags")
        if recorded is None:
            if record:
                if self.study.get_trials(deepcopy=False):
                    logger.warning("study %s: its earlier trials were trained before studies recorded their flags; "
                                   "this worker's are recorded now, theirs cannot be checked",
                                   self.study.study_name)
                self.study.set_user_attr("run_flags", flags)
            return
        problems = run_record.differences(recorded, flags, "the flags the study's trials train with")
        if problems:
            raise UsageError(f"study {self.study.study_name}: {', '.join(problems)}: give the study's flags, or "
                             "start another study with --study-name NAME")

    # ---- trial accounting -------------------------------------------------------------------------------------
    def retry(self, trial, reason: str, checkpoint: Path | None) -> None:
        """Record `trial` as failed with `reason` and queue the same parameters, resuming from `checkpoint`."""
        TrialState = self.optuna.trial.TrialState
        attrs = {"resumes": trial.number, **({"resume_checkpoint": str(checkpoint)} if checkpoint else {})}
        self.study.enqueue_trial(trial.params, user_attrs=attrs)
        for key, value in {"reason": reason, "not_counted": True}.items():
            self.storage.set_trial_user_attr(trial._trial_id, key, value)
        self.study.tell(trial.number, state=TrialState.FAIL)

    @staticmethod
    def last_checkpoint(folder: Path, fallback: str | None) -> Path | str | None:
        """Where a retry of the trial in `folder` continues: its last complete checkpoint, else where it started."""
        complete = checkpoints.complete_checkpoints(folder) if folder.is_dir() else []
        return complete[-1] if complete else fallback

    def orphaned(self, trial) -> str | None:
        """Why a RUNNING trial has no live worker: its process on this machine is gone, or its heartbeat is old."""
        attrs = trial.user_attrs
        if attrs.get("host") == self.host and "pid" in attrs and not pid_alive(attrs["pid"]):
            return f"worker {attrs['pid']} on {self.host} stopped without finishing it"
        beat = attrs.get("heartbeat")
        if self.stale_after and beat is not None and time.time() - beat > self.stale_after:
            return f"worker {attrs.get('pid')} on {attrs.get('host')} silent for {time.time() - beat:.0f} s"
        return None

    def fail_orphans(self) -> None:
        """RUNNING trials whose worker is gone: failed with the reason, and queued again."""
        for trial in self.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,)):
            reason = self.orphaned(trial)
            if reason:
                folder = self.folder / trial.user_attrs.get("folder", f"trial-{trial.number}")
                self.retry(trial, reason, self.last_checkpoint(folder, trial.user_attrs.get("resume_checkpoint")))
                logger.warning("trial %d: %s; queued again", trial.number, reason)

    def next_trial(self):
        """The next trial to run, or None once the study holds `total` trials and none is queued."""
        TrialState = self.optuna.trial.TrialState
        with self.lock:
            if self.trial_flags is not None:
                self.check_trial_flags(self.trial_flags, record=True)
            self.fail_orphans()
            trials = self.study.get_trials(deepcopy=False)
            queued = any(t.state == TrialState.WAITING for t in trials)
            if not queued and sum(map(counts_toward_total, trials)) >= self.total:
                return None
            trial = self.study.ask()
        earlier = [t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number]
        if "resumes" not in trial.user_attrs and sum(map(counts_toward_total, earlier)) >= self.total:
            trial.set_user_attr("not_counted", True)  # another worker (RDB storage) took the last one first
            trial.set_user_attr("reason", f"past --trials {self.total}: another worker took the last trial")
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    # ---- one trial --------------------------------------------------------------------------------------------
    def run_trial(self, trial) -> None:
        TrialState = self.optuna.trial.TrialState
        # Seeded per trial, so workers that start together do not sample the same point.
        self.study.sampler = self.optuna.samplers.TPESampler(seed=self.args.seed + trial.number)
        try:
            params = suggest(trial, self.space)
        except ValueError as error:  # Optuna refuses a distribution that changed kind within one study
            trial.set_user_attr("not_counted", True)
            trial.set_user_attr("reason", f"search space does not fit the study: {error}")
            self.study.tell(trial, state=TrialState.FAIL)
            raise UsageError(f"--space does not fit the study's earlier trials ({error}); "
                             "use another --study-name or keep each field's type and log setting") from None
        folder = self.folder / f"trial-{trial.number}"
        owner = {"folder": folder.name, "host": self.host, "pid": self.pid, "heartbeat": time.time()}
        for key, value in owner.items():
            trial.set_user_attr(key, value)
        resume = trial.user_attrs.get("resume_checkpoint")
        resume = resume if resume and checkpoints.is_complete(Path(resume)) else None
        recipe = dataclasses.replace(get_recipe(self.args.model, self.args.recipe), **params)
        args = dataclasses.replace(self.args, resume=resume)
        flags = {"run_name": f"{self.folder.name}-{folder.name}", **self.flags}
        if self.args.wandb:
            os.environ["WANDB_RUN_GROUP"] = self.folder.name  # one wandb group per study, one run per trial
        pruner = pruning_callback(trial)
        logger.info("trial %d: %s%s", trial.number, params, f" (resuming {resume})" if resume else "")
        folder.mkdir(parents=True, exist_ok=True)
        start = time.time()
        try:
            results = train_once(args, flags, self.data, folder, recipe=recipe, callbacks=(pruner,))
        except Preempted as stop:
            self.retry(trial, f"preempted: {str(stop).split(';')[0]}", self.last_checkpoint(folder, resume))
            raise Preempted(f"trial {trial.number} {str(stop).split(';')[0]}; it is queued again: the same command "
                            "continues the study from that checkpoint", stop.exit_code - 128) from None
        except InputError as error:  # not the parameters' fault: the same point runs again once the input is fixed
            self.retry(trial, str(error), self.last_checkpoint(folder, resume))
            raise
        except CifarError as error:  # a diverged run (non-finite loss) is a result of its parameters
            trial.set_user_attr("reason", str(error))
            trial.set_user_attr("wall_s", time.time() - start)
            self.study.tell(trial, state=TrialState.FAIL)
            return
        except BaseException:
            self.retry(trial, "interrupted", self.last_checkpoint(folder, resume))
            raise
        trial.set_user_attr("wall_s", time.time() - start)
        trial.set_user_attr("test_accuracy", results["test_accuracy"])
        if pruner.pruned_at:
            epoch, accuracy = pruner.pruned_at
            trial.set_user_attr("reason", f"pruned after epoch {epoch}: validation accuracy {accuracy:.4f} "
                                          "below the median of earlier trials at that epoch")
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, results["val_accuracy"])
        logger.info("trial %d: %s, validation accuracy %.4f", trial.number,
                    "pruned" if pruner.pruned_at else "complete", results["val_accuracy"])

    def run(self) -> dict:
        try:
            while (trial := self.next_trial()) is not None:
                self.run_trial(trial)
        finally:
            summary = write_results(self.study, self.folder)
        return summary


# ---- results.json and trials.png ----------------------------------------------------------------------------------
def trial_record(trial) -> dict:
    attrs = trial.user_attrs
    wall = attrs.get("wall_s")
    if wall is None and trial.datetime_start and trial.datetime_complete:
        wall = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {"number": trial.number, "state": trial.state.name, "params": trial.params, "value": trial.value,
            "test_accuracy": attrs.get("test_accuracy"), "wall_s": wall, "folder": attrs.get("folder"),
            "reason": attrs.get("reason"), **({"resumes": attrs["resumes"]} if "resumes" in attrs else {})}


def write_results(study, folder: Path) -> dict:
    trials = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["value"]) if complete else None
    summary = {
        "study_name": study.study_name,
        "model": study.user_attrs.get("model"),
        "tune": True,
        "best_value": best["value"] if best else None,
        "best_params": best["params"] if best else None,
        "best_trial": best["number"] if best else None,
        "best_folder": best["folder"] if best else None,
        "trials": trials,
    }
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / f".results.json.{os.getpid()}"  # workers finish at any time: replace, never half-write
    staged.write_text(json.dumps(summary, indent=2) + "\n")
    staged.replace(folder / "results.json")
    from ..plots import plot_trials

    plot_trials(trials, folder / "trials.png", f"{study.study_name}: validation accuracy per trial")
    return summary
