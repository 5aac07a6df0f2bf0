"""`cifar-hf demo`: the Gradio page in a real headless Chromium, the /predict endpoint, and the Space folder."""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import yaml
from PIL import Image
from synthetic import pretend_online

import cifar_hf.serving.space as space
from cifar_hf.__main__ import main as cli
from cifar_hf.commands.train import main as train
from cifar_hf.serving.demo_app import Classifier, build_demo, write_examples

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
PAGE_TIMEOUT_S = 180  # a generous ceiling for a busy CI machine, not a performance limit


@pytest.fixture(scope="module")
def demo_run(tiny_dataset, tmp_path_factory):
    save = tmp_path_factory.mktemp("demo-run")
    assert train(["-m", "cnn", "-d", "cpu", "--dataset", str(tiny_dataset), "--val-size", "40", "-e", "2", "-b", "16",
                  "--max-train-samples", "96", "-l", "3e-3", "-s", str(save), "--disable_tqdm", "true"]) == 0
    return save / "cifar-cnn"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER and Path(CHROMIUM).exists(), "install the browser: apt-get install -y chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root in a container has no sandbox; /dev/shm is small there.
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,820"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_in_chromium_shows_the_label_predict_gives(demo_run, browser, tmp_path, capsys):
    from gradio_client import Client, handle_file
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upload = tmp_path / "upload.png"
    Image.new("RGB", (48, 40), (40, 40, 205)).save(upload)
    assert cli(["predict", "--model", str(demo_run), str(upload), "--top-k", "1"]) == 0
    predicted = capsys.readouterr().out.strip().split(": ")[1].split(" ")[0]

    demo = build_demo(str(demo_run))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        assert demo.share_url is None and demo.local_url.startswith("http://127.0.0.1:")
        browser.get(demo.local_url)
        wait = WebDriverWait(browser, PAGE_TIMEOUT_S)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(str(upload))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=image] img, .image-frame img"))
        submit = [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Submit"]
        submit[0].click()
        label = (By.CSS_SELECTOR, "[data-testid=label-output-value]")
        shown = wait.until(lambda d: [e.text for e in d.find_elements(*label) if e.text.strip()])
        assert shown[0].strip() == predicted
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "validation accuracy" in page and "cnn" in page
        browser.save_screenshot(str(tmp_path / "demo.png"))  # the test artifact
        if os.environ.get("CIFAR_HF_DEMO_SCREENSHOT"):
            shutil.copy(tmp_path / "demo.png", os.environ["CIFAR_HF_DEMO_SCREENSHOT"])
        with Image.open(tmp_path / "demo.png") as screenshot:
            assert screenshot.size[0] >= 1000

        # The same endpoint for programs: /predict returns the gr.Label value.
        answer = Client(demo.local_url, verbose=False).predict(handle_file(str(upload)), api_name="/predict")
        assert answer["label"] == predicted
    finally:
        demo.close()


def test_examples_come_from_the_runs_dataset_one_per_class(demo_run):
    demo = build_demo(str(demo_run))
    examples = demo.examples_handler.examples
    assert sorted(Path(e[0]).stem.split("-", 1)[1] for e in examples) == ["blue", "dark", "green", "red"]


def test_command_binds_to_localhost_without_share_by_default(demo_run, monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Interface, "launch", lambda self, **kwargs: launched.update(kwargs))
    assert cli(["demo", "--model", str(demo_run), "--port", "7999"]) == 0
    assert launched == {"server_name": "127.0.0.1", "server_port": 7999, "share": False, "quiet": True,
                        "prevent_thread_lock": True}


def test_example_file_names_are_safe_for_any_class_name(tmp_path):
    image = Image.new("RGB", (8, 8))
    paths = write_examples([(image, "rot/red"), (image, "black cat"), (image, "../up")], tmp_path)
    assert [Path(p).parent for p in paths] == [tmp_path] * 3 and all(Path(p).is_file() for p in paths)
    assert [Path(p).name for p in paths] == ["00-rot_red.png", "01-black_cat.png", "02-.._up.png"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_stops_the_demo_and_removes_its_examples(stop, demo_run, tmp_path):
    """A real `cifar-hf demo` process: it names --share (not Gradio's `share=True` in `launch()`), and SIGTERM, as
    `kill` or `docker stop` send it, or SIGHUP, as a closed terminal sends it, removes the examples folder as Ctrl-C
    does."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    # A terminal's demo: the signal's default disposition, even when these tests themselves run under nohup
    demo = subprocess.Popen([sys.executable, "-m", "cifar_hf", "demo", "--model", str(demo_run), "--port",
                             str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=lambda: signal.signal(stop, signal.SIG_DFL))
    try:
        printed = []
        for line in demo.stdout:
            printed.append(line)
            if "public link" in line:
                break
        examples = list(tmp_path.glob("cifar-hf-examples-*/*.png"))
        assert len(examples) == 4, "".join(printed)
        assert "--share" in printed[-1] and "share=True" not in "".join(printed)
        demo.send_signal(stop)
        assert demo.wait(timeout=PAGE_TIMEOUT_S) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
    assert list(tmp_path.glob("cifar-hf-examples-*")) == []


class FakeHfApi:
    """Stands in for the network; keeps a copy of what would be uploaded."""

    calls: list = []
    uploaded: Path | None = None

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))
        patterns = kwargs.get("allow_patterns") or ["*"]
        shutil.copytree(kwargs["folder_path"], FakeHfApi.uploaded,
                        ignore=lambda folder, names: [n for n in names if not any(fnmatch(n, p) for p in patterns)])
        return SimpleNamespace(commit_url=f"https://hub.invalid/spaces/{kwargs['repo_id']}/commit/abc")


def test_space_folder_is_written_pushed_and_its_app_serves_a_local_model(demo_run, tmp_path, monkeypatch, capsys):
    FakeHfApi.uploaded = tmp_path / "uploaded"
    monkeypatch.setattr(space, "HfApi", FakeHfApi)
    pretend_online(monkeypatch)
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / ".env").write_text("HF_TOKEN=hf_secret\n")  # the user's own file in the folder: never uploaded
    assert cli(["demo", "--model", "me/tiny-cnn", "--write-space", str(folder), "--push_to_hub"]) == 0
    assert "me/tiny-cnn-demo" in capsys.readouterr().out
    (_, space_id, create_kwargs), (_, upload_kwargs) = FakeHfApi.calls
    assert space_id == "me/tiny-cnn-demo" and create_kwargs["repo_type"] == "space"
    assert create_kwargs["space_sdk"] == "gradio" and upload_kwargs["repo_type"] == "space"
    assert {p.name for p in FakeHfApi.uploaded.iterdir()} == {"app.py", "rgb.py", "requirements.txt", "README.md"}
    front = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["models"] == ["me/tiny-cnn"]
    assert "gradio" in (folder / "requirements.txt").read_text()

    # app.py builds its interface against a local model folder in place of the Hub id.
    monkeypatch.setenv("CIFAR_HF_MODEL", str(demo_run))
    monkeypatch.syspath_prepend(str(folder))  # as `python app.py` in the Space: rgb.py beside it
    spec = importlib.util.spec_from_file_location("space_app", folder / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert isinstance(app.demo, gr.Interface) and "accuracy" in app.demo.description
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    served, direct = app.predict(image), Classifier(str(demo_run)).probabilities(image)
    assert max(served, key=served.get) == max(direct, key=direct.get)
    assert served == pytest.approx(direct, abs=1e-5)
    grey = np.arange(32 * 32).reshape(32, 32) % 256  # a 16-bit grey upload is scaled to 8 bits, not clipped white
    wide, narrow = Image.fromarray((grey * 257).astype(np.uint16)), Image.fromarray(grey.astype(np.uint8))
    assert app.predict(wide) == pytest.approx(Classifier(str(demo_run)).probabilities(narrow), abs=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--write-space", "out"], "takes its Hub id"),
    (["--push_to_hub"], "go with --write-space"),
    (["--top-k", "0"], "--top-k must be at least 1"),
])
def test_bad_flags_exit_2_with_one_line(argv, message, demo_run, capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["demo", "--model", str(demo_run), *argv])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_missing_model_or_gradio_is_one_line(demo_run, tmp_path, monkeypatch, capsys):
    assert cli(["demo", "--model", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.startswith("error: --model: cannot load")
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the extra were not installed
    assert cli(["demo", "--model", str(demo_run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[demo]"' in err


def test_a_space_folder_never_replaces_the_users_files_unasked(tmp_path, capsys):
    folder = tmp_path / "space"
    argv = ["demo", "--model", "me/tiny-cnn", "--write-space", str(folder)]
    assert cli(argv) == 0 and cli(argv) == 0  # the same files again: nothing of the user's to lose
    (folder / "app.py").write_text("my own app\n")
    capsys.readouterr()
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds app.py with other contents" in err and "--overwrite" in err
    assert (folder / "app.py").read_text() == "my own app\n"
    assert cli([*argv, "--overwrite"]) == 0 and "me/tiny-cnn" in (folder / "app.py").read_text()
    assert cli(["demo", "--model", "me/tiny-cnn", "--write-space", str(folder / "app.py")]) == 1
    assert "is a file: give a folder" in capsys.readouterr().err


def test_a_space_push_with_the_hub_out_of_reach_is_one_line_before_writing(tmp_path, capsys):
    folder = tmp_path / "space"  # the tests run with HF_HUB_OFFLINE=1
    assert cli(["demo", "--model", "me/tiny-cnn", "--write-space", str(folder), "--push_to_hub"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--push_to_hub: the Hugging Face Hub is out of reach" in err
    assert not folder.exists()


def test_a_port_in_use_is_one_line_naming_the_flag(demo_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli(["demo", "--model", str(demo_run), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: --port {port} is in use on 127.0.0.1: pass another --port"


def test_a_demo_started_under_nohup_outlives_its_terminal(demo_run, tmp_path):
    """SIGHUP that the caller ignores (nohup, a service manager) stays ignored; SIGTERM still stops the demo."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    demo = subprocess.Popen([sys.executable, "-m", "cifar_hf", "demo", "--model", str(demo_run), "--port",
                             str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        for line in demo.stdout:
            if "public link" in line:
                break
        demo.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):  # still serving
            demo.wait(timeout=2)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=PAGE_TIMEOUT_S) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
    assert list(tmp_path.glob("cifar-hf-examples-*")) == []


def test_an_unresolvable_host_is_one_line(demo_run, capsys):
    assert cli(["demo", "--model", str(demo_run), "--host", "nosuch.invalid"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --host nosuch.invalid cannot be resolved")


def test_an_upload_that_is_not_an_image_shows_the_reason_in_the_page(demo_run, tmp_path):
    from gradio.data_classes import ImageData

    upload = build_demo(str(demo_run)).input_components[0]
    assert type(upload) is gr.Image  # drawn by gr.Image's own front end
    png = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(png)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:60])
    for name, reason in (("empty.png", "cannot identify image file"), ("notes.txt", "cannot identify image file"),
                         ("cut.png", "truncated")):
        with pytest.raises(gr.Error) as raised:  # gr.Error's message is what the page shows
            upload.preprocess(ImageData(path=str(tmp_path / name), orig_name=f"my-{name}"))
        message = raised.value.message
        assert f"cannot read image my-{name}" in message and reason in message and "not an image" in message
        assert str(tmp_path) not in message and "\n" not in message
    image = upload.preprocess(ImageData(path=str(png), orig_name="red.png"))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_an_uploaded_16_bit_image_scores_as_its_8_bit_equivalent(demo_run, tmp_path):
    """Gradio hands over the upload unconverted (its convert("RGB") would clip 16 bits to white); to_rgb scales it."""
    from gradio.data_classes import ImageData

    grey = Image.linear_gradient("L").resize((32, 32)).point(lambda v: v // 2 + 20)
    grey.save(tmp_path / "8-bit.png")
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(tmp_path / "16-bit.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "white.png")
    demo = build_demo(str(demo_run), examples=[])
    upload, classifier = demo.input_components[0], Classifier(str(demo_run))
    scores = [classifier.probabilities(upload.preprocess(ImageData(path=str(tmp_path / name))))
              for name in ("8-bit.png", "16-bit.png", "white.png")]
    assert scores[1] == pytest.approx(scores[0], abs=1e-6) and scores[2] != pytest.approx(scores[0], abs=1e-3)
