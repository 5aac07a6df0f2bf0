"""`cifar-hf tune`: an Optuna study of complete run folders that resumes, shares its storage and prunes;
`--repeat N`: mean +/- std over seeds, resumable; both as rows of `cifar-hf report`."""

import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import tiny_run_args

import cifar_hf.training.repeat as repeat
import cifar_hf.tuning.study as tuning_study
from cifar_hf.commands.evaluate import main as evaluate_main
from cifar_hf.commands.report import main as report_main
from cifar_hf.commands.train import main as train_main
from cifar_hf.commands.tune import main as tune_main
from cifar_hf.errors import Preempted

ROOT = Path(__file__).resolve().parents[1]


def tune_argv(dataset, save, trials, *extra):
    return ["-m", "cnn", "--trials", str(trials), "-d", "cpu", "--dataset", str(dataset), "--val-size", "40",
            "--max-train-samples", "80", "-e", "1", "-s", str(save), "--disable_tqdm", "true", *extra]


def study_results(save) -> dict:
    return json.loads((Path(save) / "cifar-cnn-tune" / "results.json").read_text())


def write_space(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def study(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("study")
    assert tune_main(tune_argv(tiny_dataset, save, 3)) == 0
    return save


def test_a_study_writes_one_run_folder_per_trial_and_names_the_best(study):
    results = study_results(study)
    assert [t["number"] for t in results["trials"]] == [0, 1, 2]
    assert {t["state"] for t in results["trials"]} == {"COMPLETE"}
    for trial in results["trials"]:
        run = json.loads((study / "cifar-cnn-tune" / trial["folder"] / "results.json").read_text())
        # The folder is the trial's own run: the sampled learning rate is the one it trained with.
        assert run["hyperparameters"]["learning_rate"] == pytest.approx(trial["params"]["learning_rate"])
        assert run["val_accuracy"] == pytest.approx(trial["value"])
        assert (study / "cifar-cnn-tune" / trial["folder"] / "model.safetensors").is_file()
    assert results["best_value"] == max(t["value"] for t in results["trials"])
    assert results["best_params"] == results["trials"][results["best_trial"]]["params"]
    assert (study / "cifar-cnn-tune" / "trials.png").stat().st_size > 0


def test_the_best_trial_folder_is_a_normal_run_folder(study, tmp_path, capsys):
    results = study_results(study)
    best = study / "cifar-cnn-tune" / results["best_folder"]
    assert evaluate_main(["--model", str(best), "--split", "validation", "--output", str(tmp_path)]) == 0
    evaluation = json.loads((tmp_path / "evaluation-validation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(json.loads((best / "results.json").read_text())["val_accuracy"])


def test_the_same_command_with_more_trials_adds_only_the_missing_ones(study, tiny_dataset):
    folder = study / "cifar-cnn-tune"
    before = {n: (folder / f"trial-{n}" / "results.json").stat().st_mtime_ns for n in range(3)}
    assert tune_main(tune_argv(tiny_dataset, study, 5)) == 0
    results = study_results(study)
    assert [t["number"] for t in results["trials"]] == [0, 1, 2, 3, 4]
    assert {n: (folder / f"trial-{n}" / "results.json").stat().st_mtime_ns for n in range(3)} == before
    assert tune_main(tune_argv(tiny_dataset, study, 5)) == 0  # already complete: nothing runs
    assert len(study_results(study)["trials"]) == 5


def test_a_study_refuses_other_flags_and_another_study_name_gets_its_own_folder(tiny_dataset, tmp_path, capsys):
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1)) == 0
    folder = tmp_path / "cifar-cnn-tune"
    def files():  # Optuna appends its "open the study" record to the journal on every open; the rest must not change
        return {p: p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.name != "study.journal"}

    before = files()
    capsys.readouterr()
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2, "-e", "2", "--max-train-samples", "60")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: study cifar-cnn-tune: -e 2 differs from the flags the study's trials train with (1), "
        "--max-train-samples 60 differs from the flags the study's trials train with (80): give the study's flags, "
        "or start another study with --study-name NAME")
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1, "-e", "2", "--study-name", "longer")) == 0
    assert json.loads((tmp_path / "longer" / "trial-0" / "results.json").read_text())["epochs"] == 2
    assert files() == before  # the first study's trials and results.json are untouched
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1, "--study-name", "../up")) == 2
    assert "--study-name '../up': it names the study's folder in -s" in capsys.readouterr().err
    # A worker on another machine sees the same data under another path: it joins the study.
    elsewhere = shutil.copytree(tiny_dataset, tmp_path / "machine-2" / Path(tiny_dataset).name)
    assert tune_main(tune_argv(elsewhere, tmp_path, 2)) == 0
    assert [t["state"] for t in study_results(tmp_path)["trials"]] == ["COMPLETE", "COMPLETE"]


def test_of_two_workers_started_at_once_with_other_flags_the_second_is_refused(tmp_path):
    from cifar_hf.errors import UsageError
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.tuning.space import load_space
    from cifar_hf.tuning.study import Study

    args = RunArguments(model="cnn", device="cpu")
    first, second = (Study(args, {}, tmp_path / "cifar-cnn-tune", load_space(None, "cnn"), 4) for _ in range(2))
    first.check_trial_flags({"-e": 1})
    second.check_trial_flags({"-e": 2})  # nothing recorded yet: both start
    assert first.next_trial() is not None  # takes a trial, and records its flags under the storage's lock
    with pytest.raises(UsageError, match=r"-e 2 differs from the flags the study's trials train with \(1\)"):
        second.next_trial()


def test_the_report_shows_the_study_as_its_best_trial(study, capsys):
    assert report_main([str(study)]) == 0
    table = capsys.readouterr().out
    trials = len(study_results(study)["trials"])  # 3, or 5 once another test has extended the study
    assert f"cifar-cnn-tune ({trials} trials, best #" in table and "trial-" not in table.split("best #")[0]


def test_two_workers_on_one_storage_share_the_trials(tiny_dataset, tmp_path):
    storage = tmp_path / "shared" / "cnn.journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "cifar_hf", "tune", *tune_argv(tiny_dataset, tmp_path, 3),
                          "--storage", str(storage)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate()
        assert worker.returncode == 0, stderr.decode()[-2000:]
    results = study_results(tmp_path)
    assert sorted(t["number"] for t in results["trials"]) == [0, 1, 2]
    assert {t["state"] for t in results["trials"]} == {"COMPLETE"}
    for trial in results["trials"]:
        run = json.loads((tmp_path / "cifar-cnn-tune" / trial["folder"] / "results.json").read_text())
        # No folder overwritten: each holds the run of its own trial's parameters.
        assert run["hyperparameters"]["learning_rate"] == pytest.approx(trial["params"]["learning_rate"])
    # Trials are seeded by their number, so two workers starting together do not sample the same point.
    assert len({t["params"]["learning_rate"] for t in results["trials"]}) == 3


def test_a_trial_worse_than_the_median_is_pruned_and_recorded(tiny_dataset, tmp_path):
    base = ["-e", "2", "-b", "16", "--prune-after", "1"]
    good = write_space(tmp_path / "good.yaml", "learning_rate: {type: float, low: 3.0e-3, high: 1.0e-2, log: true}\n")
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1, *base, "--space", good)) == 0
    frozen = write_space(tmp_path / "frozen.yaml",
                         "learning_rate: {type: float, low: 1.0e-9, high: 2.0e-9, log: true}\n")
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2, *base, "--space", frozen)) == 0
    trials = study_results(tmp_path)["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"]
    assert trials[1]["reason"].startswith("pruned after epoch 1")
    pruned = json.loads((tmp_path / "cifar-cnn-tune" / "trial-1" / "results.json").read_text())
    complete = json.loads((tmp_path / "cifar-cnn-tune" / "trial-0" / "results.json").read_text())
    assert pruned["global_step"] * 2 == complete["global_step"]  # stopped after one of its two epochs


def test_a_preempted_trial_is_recorded_and_run_again_by_the_same_command(tiny_dataset, tmp_path, monkeypatch, capsys):
    real_train_once, stopped = tuning_study.train_once, []

    def preempt_trial_1(args, flags, data, folder, **kwargs):
        if folder.name == "trial-1" and not stopped:
            stopped.append(folder.name)
            raise Preempted("stopped by SIGTERM at step 3", 15)
        return real_train_once(args, flags, data, folder, **kwargs)

    monkeypatch.setattr(tuning_study, "train_once", preempt_trial_1)
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2)) == 128 + 15
    trials = study_results(tmp_path)["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "WAITING")]
    assert "the same command continues the study" in capsys.readouterr().err
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2)) == 0
    trials = study_results(tmp_path)["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    assert trials[1]["reason"].startswith("preempted") and trials[2]["resumes"] == 1
    assert trials[2]["params"] == trials[1]["params"]  # the same point, not a new one in its place


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


@pytest.mark.parametrize("worker, reason", [
    (lambda: {"host": socket.gethostname(), "pid": dead_pid(), "heartbeat": time.time()}, "stopped without finishing"),
    (lambda: {"host": "another-machine", "pid": 1, "heartbeat": time.time() - 7200}, "silent for 72"),
], ids=["this-machine", "another-machine"])
def test_a_trial_left_running_by_a_killed_worker_is_run_again(tiny_dataset, tmp_path, worker, reason):
    import optuna

    folder = tmp_path / "cifar-cnn-tune"
    folder.mkdir()
    storage, _ = tuning_study.open_storage(None, folder)
    study = optuna.create_study(storage=storage, study_name=folder.name, direction="maximize")
    orphan = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)})
    for key, value in {**worker(), "folder": "trial-0"}.items():
        orphan.set_user_attr(key, value)  # as a worker that was then SIGKILLed would have left it
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1, "-b", "16")) == 0
    trials = study_results(tmp_path)["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "FAIL"), (1, "COMPLETE")]
    assert reason in trials[0]["reason"] and trials[1]["resumes"] == 0
    assert trials[1]["params"]["learning_rate"] == trials[0]["params"]["learning_rate"]  # the same point again


def test_a_live_worker_elsewhere_keeps_its_trial(tiny_dataset, tmp_path):
    import optuna

    folder = tmp_path / "cifar-cnn-tune"
    folder.mkdir()
    storage, _ = tuning_study.open_storage(None, folder)
    study = optuna.create_study(storage=storage, study_name=folder.name, direction="maximize")
    running = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)})
    for key, value in {"host": "another-machine", "pid": 1, "heartbeat": time.time(), "folder": "trial-0"}.items():
        running.set_user_attr(key, value)
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2, "-b", "16")) == 0
    trials = study_results(tmp_path)["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "RUNNING"), (1, "COMPLETE")]  # counted, not rerun


@pytest.mark.parametrize("text, key", [
    ("learning_rat: {type: float, low: 0.001, high: 0.01}\n", "learning_rat"),
    ("weight_decay: {type: float, low: 0.1}\n", "weight_decay"),
    ("batch_size: {type: categorical, choices: []}\n", "batch_size"),
])
def test_a_bad_search_space_is_one_line_naming_the_key(tiny_dataset, tmp_path, capsys, text, key):
    space = write_space(tmp_path / "space.yaml", text)
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1, "--space", space)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --space") and f"key {key!r}" in error and "\n" not in error
    assert not (tmp_path / "cifar-cnn-tune").exists()


def test_without_optuna_tune_names_the_pip_command(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 1)) == 1
    error = capsys.readouterr().err.strip()
    assert 'pip install -e ".[tune]"' in error and "\n" not in error


def repeat_argv(dataset, save, *extra):
    return tiny_run_args(dataset, save, "--repeat", "3", "--max-train-samples", "80", "-e", "1", "-b", "16",
                         "-l", "3e-3", *extra)


def test_a_seed_stopped_after_its_folder_is_complete_keeps_the_run_an_overwrite_replaces(tiny_dataset, tmp_path,
                                                                                         monkeypatch, capsys):
    """A signal during a seed's final writing leaves that seed complete, not the repeat: the old run stays aside."""
    argv = tiny_run_args(tiny_dataset, tmp_path, "--repeat", "2", "--max-train-samples", "40", "-e", "1", "-b", "16")
    assert train_main(argv) == 0
    folder = tmp_path / "cifar-cnn-repeat"
    old_report = (folder / "results.json").read_bytes()
    real_train_once = repeat.train_once

    def stopped_while_writing(args, flags, data, seed_folder, **kwargs):
        real_train_once(args, flags, data, seed_folder, **kwargs)
        raise Preempted(f"stopped by SIGTERM after training: the run folder {seed_folder} is complete", 15, kept="run")

    monkeypatch.setattr(repeat, "train_once", stopped_while_writing)
    assert train_main([*argv, "--overwrite"]) == 143
    assert "the replaced run stays in" in capsys.readouterr().err
    assert (folder / ".replaced" / "results.json").read_bytes() == old_report
    assert not (folder / "results.json").exists()  # one seed of two: no report yet


def test_an_interrupted_repeat_resumes_and_aggregates_three_seeds(tiny_dataset, tmp_path, monkeypatch, capsys,
                                                                   caplog):
    real_train_once, trained, stopped = repeat.train_once, [], []

    def stop_at_second_seed(args, flags, data, folder, **kwargs):
        if folder.name == "seed-2024" and not stopped:
            stopped.append(folder.name)
            raise KeyboardInterrupt  # a preemption during the second seed, the first time only
        trained.append(folder.name)
        return real_train_once(args, flags, data, folder, **kwargs)

    monkeypatch.setattr(repeat, "train_once", stop_at_second_seed)
    assert train_main(repeat_argv(tiny_dataset, tmp_path)) == 130  # one line and a shell's Ctrl-C status
    with caplog.at_level(logging.INFO):
        assert train_main(repeat_argv(tiny_dataset, tmp_path, "--resume", "auto")) == 0
    assert trained == ["seed-2023", "seed-2024", "seed-2025"]  # seed 2023 was not trained twice
    read_back = [r.name for r in caplog.records if r.getMessage().startswith("seed 2023 is complete: reading")]
    assert read_back == ["cifar_hf.training.repeat"]  # the repeat's line, not cross-validation's

    folder = tmp_path / "cifar-cnn-repeat"
    report = json.loads((folder / "results.json").read_text())
    assert report["seeds"] == [2023, 2024, 2025]
    runs = [json.loads((folder / f"seed-{s}" / "results.json").read_text()) for s in report["seeds"]]
    assert [r["seed"] for r in runs] == [2023, 2024, 2025]
    assert len({r["hyperparameters"]["validation_size"] for r in runs}) == 1  # one split for every seed
    for metric in ("val_accuracy", "test_accuracy"):
        values = [r[metric] for r in runs]
        assert report[f"{metric}_mean"] == pytest.approx(statistics.mean(values))
        assert report[f"{metric}_std"] == pytest.approx(statistics.stdev(values))
        assert (report[f"{metric}_min"], report[f"{metric}_max"]) == (min(values), max(values))
    capsys.readouterr()
    assert report_main([str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "cifar-cnn-repeat (3 seeds)" in table and "seed-2023" not in table
    mean, std = report["test_accuracy_mean"], report["test_accuracy_std"]
    assert f"{100 * mean:.2f}% ± {100 * std:.2f}" in table

    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert train_main(repeat_argv(tiny_dataset, tmp_path, "--resume", "auto", "-b", "32")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: -b 32 differs from the flags seed 2023 was trained with (16)")  # no summary of unlike seeds
    # Seeds 2024-2026 overlap the folders, but those were trained on the split that --seed 2023 drew.
    assert train_main(repeat_argv(tiny_dataset, tmp_path, "--resume", "auto", "--seed", "2024")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --seed 2024 differs from the seed that drew the split of {folder} (2023): give that --seed, or "
        "start a new run with --overwrite")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_push_with_the_hub_out_of_reach_is_refused_before_any_trial(tiny_dataset, tmp_path, capsys):
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # as a user offline
    assert tune_main(tune_argv(tiny_dataset, tmp_path, 2, "--push_to_hub", "--hub_model_id", "me/best")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --push_to_hub: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE is set); tune without "
        "it and push the best trial's folder later")
    assert list(tmp_path.iterdir()) == []  # no study was started


def test_a_stop_signal_while_the_study_loads_its_data_is_one_line(tiny_dataset, tmp_path, monkeypatch, capsys):
    import signal

    import cifar_hf.data

    def not_handled(number, frame):
        raise AssertionError("tune left SIGTERM to its default action: the process would die without a word")

    def load_and_get_stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler preempting the job while the images decode
        time.sleep(5)  # the handler raises before this returns
        raise AssertionError("no stop")

    previous = signal.signal(signal.SIGTERM, not_handled)
    try:
        monkeypatch.setattr(cifar_hf.data, "load_cifar", load_and_get_stopped)
        assert tune_main(tune_argv(tiny_dataset, tmp_path, 2)) == 143
        assert signal.getsignal(signal.SIGTERM) is not_handled  # tune put the caller's handler back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: stopped by SIGTERM"


def test_a_training_flag_that_replaces_a_searched_setting_takes_it_out_of_the_search():
    """--label_smoothing_factor applies to every trial (it replaces the recipe's value), so sampling it is noise."""
    from cifar_hf.commands.tune import searched_space
    from cifar_hf.training.arguments import RunArguments
    from cifar_hf.tuning.space import load_space

    space = load_space(None, "cnn")
    args = RunArguments(model="cnn")
    assert "label_smoothing" in searched_space(space, args, {})
    left = searched_space(space, args, {"label_smoothing_factor": 0.1, "weight_decay": 0.0})
    assert "label_smoothing" not in left and "weight_decay" not in left and left


@pytest.mark.parametrize("name", ["../up", "a:b", "what?", "CON", "trailing."])
def test_a_study_name_must_be_a_folder_name_on_every_system(name):
    from cifar_hf.commands.tune import study_folder
    from cifar_hf.errors import UsageError

    with pytest.raises(UsageError, match="must be a plain folder name"):
        study_folder("runs", name, "cnn", None)
    assert study_folder("runs", "resnet-lr_sweep.2", "resnet", None) == Path("runs/resnet-lr_sweep.2")


def test_a_named_study_started_in_the_default_folder_continues_there(tmp_path):
    """Before studies had folders of their own, --study-name put a study in cifar-<model>-tune's journal."""
    import optuna

    from cifar_hf.commands.tune import study_folder
    from cifar_hf.tuning.study import open_storage

    default = tmp_path / "cifar-cnn-tune"
    optuna.create_study(storage=open_storage(None, default)[0], study_name="sweep")
    assert study_folder(str(tmp_path), "sweep", "cnn", None) == default
    assert study_folder(str(tmp_path), "another", "cnn", None) == tmp_path / "another"
