"""Model card, Hub push (only the network call is replaced), and the evaluate / predict commands."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from huggingface_hub.utils import filter_repo_objects
from PIL import Image
from synthetic import pretend_online
from transformers import pipeline

import cifar_hf.hub as hub
from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train

CANARY = "hf_CANARY_token_do_not_leak_1234567890"
EXPECTED_HUB_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "results.json", "README.md",
                      "configuration_cnn.py", "modeling_cnn.py"}


class FakeHfApi:
    """Stands in for the network: records the calls and keeps a copy of what would be uploaded."""

    calls: list = []
    uploaded: Path | None = None

    def __init__(self, *args, **kwargs):
        FakeHfApi.calls.append(("init", args, kwargs))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"someone/{repo_id}")

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        FakeHfApi.uploaded.mkdir(parents=True)
        # the same filter huggingface_hub applies to allow_patterns before uploading
        for name in filter_repo_objects([p.name for p in folder.iterdir() if p.is_file()],
                                        allow_patterns=kwargs.get("allow_patterns")):
            shutil.copy2(folder / name, FakeHfApi.uploaded / name)
        return SimpleNamespace(commit_url=f"https://hub.invalid/{kwargs['repo_id']}/commit/abc")


@pytest.fixture(scope="module")
def pushed_run(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("pushed")
    FakeHfApi.uploaded = save / "uploaded"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub, "HfApi", FakeHfApi)
        pretend_online(patch)
        patch.setenv("HF_TOKEN", CANARY)
        patch.setenv("WANDB_API_KEY", CANARY)
        code = train(["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "3",
                      "-b", "16", "-l", "3e-3", "-s", str(save), "--disable_tqdm", "true", "-w",
                      "--push_to_hub", "--hub_model_id", "me/tiny-cnn", "--hub_private_repo", "true"])
        assert code == 0
    return save / "cifar-cnn"


def test_card_has_hub_metadata_and_the_measurements(pushed_run):
    card = (pushed_run / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    meta = yaml.safe_load(front)
    results = json.loads((pushed_run / "results.json").read_text())
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "image-classification"
    assert meta["license"] and meta["metrics"] == ["accuracy"]
    index = meta["model-index"][0]
    assert index["name"] == "me/tiny-cnn"
    values = {r["dataset"]["split"]: r["metrics"][0]["value"] for r in index["results"]}
    assert values["validation"] == round(results["val_accuracy"], 4)
    assert values["test"] == round(results["test_accuracy"], 4)
    for expected in ("| red |", "cpu (", "training time", "trust_remote_code=True", "revision=REVISION",
                     "seed 2023", "adam"):
        assert expected in body


def test_push_uploads_exactly_the_final_model_with_a_token_from_the_environment(pushed_run):
    (_, repo_id, create_kwargs), = [c for c in FakeHfApi.calls if c[0] == "create_repo"]
    (_, upload_kwargs), = [c for c in FakeHfApi.calls if c[0] == "upload_folder"]
    assert repo_id == "me/tiny-cnn" and create_kwargs["private"] is True
    assert upload_kwargs["repo_id"] == "me/tiny-cnn"
    # No token is passed anywhere: huggingface_hub reads HF_TOKEN (or the stored login) itself.
    assert CANARY not in repr(FakeHfApi.calls) and "token" not in create_kwargs and "token" not in upload_kwargs
    assert {p.name for p in FakeHfApi.uploaded.iterdir()} == EXPECTED_HUB_FILES


def test_uploaded_folder_loads_in_a_fresh_process(pushed_run):
    script = f"""
import sys
sys.modules["cifar_hf"] = None
from PIL import Image
from transformers import pipeline
from transformers import AutoModelForImageClassification, pipeline
folder = {str(FakeHfApi.uploaded)!r}
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
classifier = pipeline("image-classification", model=folder, trust_remote_code=True, device="cpu")
print(classifier(Image.new("RGB", (50, 50), (210, 30, 30)))[0]["label"])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "red"


def test_token_canaries_appear_in_no_file(pushed_run, capsys):
    for path in pushed_run.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_token_on_the_command_line_is_refused(tiny_dataset, tmp_path, capsys):
    assert train(["-m", "cnn", "--dataset", str(tiny_dataset), "--hub_token", CANARY, "-s", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "HF_TOKEN" in err and CANARY not in err


def test_evaluate_reproduces_the_training_runs_validation_accuracy(pushed_run, tmp_path, capsys):
    assert cli(["evaluate", "--model", str(pushed_run), "--split", "validation", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation-validation.json").read_text())
    trained = json.loads((pushed_run / "results.json").read_text())
    assert report["num_images"] == 40
    assert report["accuracy"] == pytest.approx(trained["val_accuracy"], abs=1e-9)
    assert report["loss"] == pytest.approx(trained["val_loss"], rel=1e-4)
    assert sum(map(sum, report["confusion_matrix"])) == 40
    with Image.open(tmp_path / "confusion_matrix-validation.png") as png:
        assert png.size[0] >= 300
    assert "accuracy" in capsys.readouterr().out


def test_evaluate_tta_scores_the_mean_of_image_and_mirror(pushed_run, tmp_path):
    import torch
    from transformers import AutoModelForImageClassification

    from cifar_hf.data import load_cifar
    from cifar_hf.data.augment import BatchTransform

    plain = ["evaluate", "--model", str(pushed_run), "--split", "validation", "--output", str(tmp_path)]
    assert cli(plain) == 0
    before = (tmp_path / "evaluation-validation.json").read_bytes()
    assert cli([*plain, "--tta"]) == 0
    assert (tmp_path / "evaluation-validation.json").read_bytes() == before  # scored another way: its own file
    report = json.loads((tmp_path / "evaluation-validation-tta.json").read_text())
    trained = json.loads((pushed_run / "results.json").read_text())
    data = load_cifar(trained["dataset"], val_size=trained["hyperparameters"]["val_size"])
    model = AutoModelForImageClassification.from_pretrained(pushed_run).eval()
    stats = trained["hyperparameters"]["data"]["normalisation"]  # the run normalised with its data's statistics
    transform = BatchTransform(mean=tuple(stats["mean"]), std=tuple(stats["std"]))
    pixels = transform(torch.from_numpy(data.validation.pixels).permute(0, 3, 1, 2), train=False)
    with torch.no_grad():
        mirrored = (model(pixel_values=pixels).logits + model(pixel_values=pixels.flip(-1)).logits) / 2
    labels = torch.from_numpy(data.validation.labels)
    assert report["tta"] is True
    assert report["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(mirrored, labels)), rel=1e-5)
    assert report["loss"] != pytest.approx(trained["val_loss"], rel=1e-5)  # not the plain evaluation
    assert report["accuracy"] == pytest.approx(float((mirrored.argmax(-1) == labels).float().mean()), abs=1e-9)


def test_evaluate_test_split_and_missing_test_split(pushed_run, tiny_dataset_no_test, tmp_path, capsys):
    assert cli(["evaluate", "--model", str(pushed_run), "--output", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "evaluation-test.json").read_text())["num_images"] == 80
    argv = ["evaluate", "--model", str(pushed_run), "--dataset", str(tiny_dataset_no_test), "--output", str(tmp_path)]
    capsys.readouterr()
    assert cli(argv) == 0  # no test split: the validation split, said so
    assert f"note: {tiny_dataset_no_test} has no test split: evaluating the validation split" in (
        capsys.readouterr().err)
    assert json.loads(next(tmp_path.glob("evaluation-*-validation.json")).read_text())["split"] == "validation"


def test_an_evaluation_at_another_image_size_is_its_own_file_and_card_row(pushed_run, tmp_path, capsys):
    argv = ["evaluate", "--model", str(pushed_run), "--split", "validation", "--output", str(tmp_path)]
    assert cli([*argv, "--image-size", "48"]) == 0
    report = json.loads((tmp_path / "evaluation-validation-48px.json").read_text())
    assert report["image_size"] == 48 and not (tmp_path / "evaluation-validation.json").exists()
    assert cli([*argv, "--image-size", "48"]) == 0
    assert f"note: replacing the earlier {tmp_path / 'evaluation-validation-48px.json'}" in capsys.readouterr().err
    trained = json.loads((pushed_run / "results.json").read_text())
    card = hub.model_card(trained, evaluations=[report])
    assert "| validation (48 px) | 40 |" in card
    metrics = hub.card_data(trained, evaluations=[report]).eval_results
    assert [r.metric_value for r in metrics if r.metric_name == "validation accuracy (48 px)"] == [
        round(report["accuracy"], 4)]  # not mistaken for the run's own validation accuracy


def test_predict_any_image_and_report_non_images(pushed_run, tmp_path, capsys):
    files = {
        "grey.png": Image.new("L", (32, 32), 30),
        "rgba.png": Image.new("RGBA", (32, 32), (210, 30, 30, 100)),
        "big.jpg": Image.new("RGB", (64, 64), (30, 200, 30)),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    paths = [str(tmp_path / n) for n in ("grey.png", "notes.txt", "rgba.png", "big.jpg")]
    assert cli(["predict", "--model", str(pushed_run), *paths, "--top-k", "2"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [paths[0], paths[2], paths[3]]
    assert all(len(line.split(": ", 1)[1].split(", ")) == 2 for line in lines)
    # The same answer as the Transformers pipeline on the same files (same preprocessing, same model).
    classifier = pipeline("image-classification", model=str(pushed_run), device="cpu")
    for path, line in zip([paths[0], paths[2], paths[3]], lines, strict=True):
        assert line.split(": ")[1].split(" ")[0] == classifier(Image.open(path).convert("RGB"))[0]["label"]
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "notes.txt" in errors[0]


def copy_without_weights(run: Path, folder: Path) -> Path:
    """The run's configuration files (config, processor, results, model code) in `folder`, without its weights."""
    folder.mkdir(parents=True)
    for path in run.iterdir():
        if path.is_file() and path.suffix in {".json", ".py"}:
            shutil.copy2(path, folder / path.name)
    return folder


@pytest.mark.parametrize("command", [["predict", "x.png"], ["evaluate"], ["export"]])
def test_a_damaged_weights_file_is_one_line_naming_the_folder(command, pushed_run, tmp_path, capsys):
    damaged = copy_without_weights(pushed_run, tmp_path / "half")
    (damaged / "model.safetensors").write_bytes((pushed_run / "model.safetensors").read_bytes()[:1000])
    assert cli([command[0], "--model", str(damaged), *command[1:]]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: --model: {damaged}: its weights file is damaged")


def test_a_training_checkpoint_names_its_run_folder(pushed_run, tmp_path, capsys):
    checkpoint = copy_without_weights(pushed_run, tmp_path / "run" / "checkpoint-12")
    (checkpoint / "preprocessor_config.json").unlink()  # as the Trainer writes checkpoints: no image processor
    shutil.copy2(pushed_run / "model.safetensors", checkpoint)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 12}')
    assert cli(["evaluate", "--model", str(checkpoint)]) == 1
    assert capsys.readouterr().err == (f"error: --model: {checkpoint} is a training checkpoint; pass the run folder "
                                       f"{checkpoint.parent} (or --resume it)\n")


@pytest.mark.parametrize("command", [["predict", "x.png"], ["evaluate"], ["export"], ["demo"]])
def test_an_unfinished_run_folder_and_a_save_folder_say_what_they_hold(command, pushed_run, tmp_path, capsys):
    """A run stopped before its final save holds only checkpoints; -s's folder holds run folders: neither is a
    model, and the line says what is there instead of the loader's 'Unrecognized model ... model_type'."""
    stopped = tmp_path / "runs" / "cifar-cnn"
    for step in (10, 5, 15):
        (stopped / f"checkpoint-{step}").mkdir(parents=True)
    assert cli([command[0], "--model", str(stopped), *command[1:]]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --model: {stopped} holds no final model yet, only checkpoints (checkpoint-5, "
                   "checkpoint-10, checkpoint-15): the run is still training, or was stopped (then finish it by "
                   "running its command again with --resume auto)")
    shutil.copytree(pushed_run, tmp_path / "runs" / "cifar-resnet")
    assert cli([command[0], "--model", str(tmp_path / "runs"), *command[1:]]) == 1
    expected = f"error: --model: {tmp_path / 'runs'} holds run folders (cifar-resnet): pass one of them"
    assert capsys.readouterr().err.strip() == expected


def test_neither_folder_nor_hub_id_is_refused_at_once_and_a_hub_id_costs_one_probe(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    import cifar_hf.offline

    monkeypatch.chdir(tmp_path)
    probes = []
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # as on a machine that did not set it
    monkeypatch.setattr(cifar_hf.offline, "hub_reachable", lambda timeout_s=5.0: probes.append(1) and False)
    assert cli(["evaluate", "--model", "does-not-exist"]) == 1
    assert capsys.readouterr().err == ("error: --model: cannot load 'does-not-exist': no such folder "
                                       "(nor a Hub id OWNER/NAME)\n")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert cli(["evaluate", "--model", "model.safetensors"]) == 1
    assert capsys.readouterr().err == ("error: --model: model.safetensors is a file: pass the run folder that "
                                       "holds it\n")
    assert probes == []  # not a Hub id: the Hub is not asked
    assert cli(["predict", "--model", "me/not-cached", "x.png"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --model: cannot load 'me/not-cached'")
    assert probes == [1] and huggingface_hub.constants.HF_HUB_OFFLINE  # offline after one probe: no retries
    # A typo of a run folder reads like a Hub id: the closest folder is named, not only the Hub's failure
    (tmp_path / "runs" / "cifar-cnn").mkdir(parents=True)
    assert cli(["evaluate", "--model", "runs/cifar-cn"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --model: cannot load 'runs/cifar-cn': no such folder "
                                                   "(did you mean runs/cifar-cnn?), nor a Hub model (")
    assert cli(["predict", "--model", "runs/cifar-cnn/final", "x.png"]) == 1
    assert capsys.readouterr().err == ("error: --model: cannot load 'runs/cifar-cnn/final': no such folder (nor a Hub "
                                       "id OWNER/NAME)\n")


def test_evaluate_push_offline_is_refused_before_evaluating(pushed_run, tmp_path, capsys):
    assert cli(["evaluate", "--model", str(pushed_run), "--output", str(tmp_path), "--push", "me/x"]) == 2
    assert capsys.readouterr().err.startswith("error: --push me/x: the Hugging Face Hub is out of reach")
    assert list(tmp_path.iterdir()) == []  # refused before anything was evaluated or written


def test_predict_reads_a_16_bit_image_as_its_8_bit_equivalent(pushed_run, tmp_path, capsys):
    """A 16-bit PNG (mode I;16), once clipped to white by convert("RGB"), scores as the 8-bit image it scales to."""
    grey = Image.linear_gradient("L").resize((32, 32)).point(lambda v: v // 2 + 20)
    grey.save(tmp_path / "8-bit.png")
    wide = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    wide.save(tmp_path / "16-bit.png")
    assert Image.open(tmp_path / "16-bit.png").mode == "I;16"
    paths = [str(tmp_path / "8-bit.png"), str(tmp_path / "16-bit.png"), str(tmp_path / "white.png")]
    Image.new("L", (32, 32), 255).save(paths[2])
    assert cli(["predict", "--model", str(pushed_run), *paths, "--top-k", "4"]) == 0
    scores = [line.split(": ", 1)[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert scores[0] == scores[1] != scores[2]


def test_an_evaluation_is_marked_where_it_scored_otherwise_than_the_run():
    """The best recipes score with flip TTA: there a plain evaluation is the other way, not --tta."""
    from cifar_hf.commands.evaluate import variant_suffix

    tta_run = {"image_size": 32, "hyperparameters": {"recipe_settings": {"tta": True}}}
    plain_run = {"image_size": 32, "hyperparameters": {"recipe_settings": {"tta": False}}}
    assert variant_suffix({"tta": True, "image_size": 32}, tta_run) == ""
    assert variant_suffix({"tta": False, "image_size": 32}, tta_run) == "-notta"
    assert variant_suffix({"tta": True, "image_size": 48}, plain_run) == "-tta-48px"
    assert variant_suffix({"tta": False, "image_size": 48}, {}) == ""  # a Hub model: the run's way is unknown
    assert hub.scoring({"tta": False, "image_size": 32}, tta_run) == " (without TTA)"
    assert hub.scoring({"tta": True, "image_size": 48}, plain_run) == " (flip TTA, 48 px)"
