"""wflwv installed from its wheel, in a fresh environment, away from the repository: configs, pipelines and
the box calibration are package data, and the installed command runs the smoke test of a new user."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a venv holding only the wheel built from this checkout; the heavy
    dependencies come from the running interpreter's site-packages through a .pth file."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # built from a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO / "wflwv", source / "wflwv", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("models", "pipelines"):
        shutil.copytree(REPO / folder, source / folder)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)], check=True, cwd=root)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True).stdout.strip()
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(shared)))
    wheel = next((root / "dist").glob("wflwv-*.whl"))
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    return venv / "bin"


def run_installed(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)


def test_the_wheel_ships_configs_pipelines_and_the_calibration(installed, tmp_path):
    script = """
import wflwv
from pathlib import Path
from wflwv.boxes import Calibration
from wflwv.models import load_config
from wflwv.models.ensemble import load_ensemble
from wflwv.pipeline.run import pipeline_path, read_pipeline
print(Path(wflwv.__file__).parent)
print(load_config("ldeq_demo")["family"], len(load_ensemble("ensemble_demo")))
print(Calibration.load().fitted_on)
print(read_pipeline(pipeline_path("wflwv"))["scrape"]["queries"], (pipeline_path("wflwv").parent / "queries.txt").is_file())
from wflwv.schemes import get_scheme, scheme_names
print(*scheme_names(), get_scheme("wflw98").maps["ibug68"].shape[0])
from wflwv.configs import MODELS, PIPELINES, shipped_names
models = [load_ensemble(n) if n.startswith("ensemble") else load_config(n) for n in shipped_names(MODELS)]
pipelines = [read_pipeline(pipeline_path(n)) for n in shipped_names(PIPELINES)]
print(len(models), len(pipelines))
import wflwv.methods.faceapi
from wflwv.methods import method_names
print(*method_names(), Path(wflwv.methods.faceapi.__file__).with_name("faceapi_worker.js").is_file())
"""
    result = run_installed(installed, tmp_path, str(installed / "python"), "-c", script)
    assert result.returncode == 0, result.stderr
    package, config, calibration, pipeline, schemes, configs, methods = result.stdout.splitlines()
    assert Path(package).is_relative_to(installed.parent) and not Path(package).is_relative_to(REPO)
    assert config.split()[0] == "ldeq" and int(config.split()[1]) > 1
    assert "synthetic world" in calibration
    assert pipeline == "queries.txt True"
    assert schemes == "ibug68 mediapipe478 wflw98 68"
    assert configs == f"{len(list((REPO / 'models').glob('*.toml')))} {len(list((REPO / 'pipelines').glob('*.toml')))}"  # every config loads
    assert methods.split() == ["dlib68", "faceapi68", "mediapipe478", "onnx", "True"]


def test_a_users_own_config_path_still_loads(installed, tmp_path):
    shipped = (REPO / "models" / "ldeq_demo.toml").read_text()
    (tmp_path / "mine.toml").write_text(re.sub(r"^epochs = .*$", "epochs = 1", shipped, flags=re.MULTILINE))
    result = run_installed(installed, tmp_path, str(installed / "python"), "-c", "from wflwv.models import load_config; print(load_config('mine.toml')['train']['epochs'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.smoke
def test_installed_wflwv_passes_the_smoke_run(installed, tmp_path):
    """synth --preset tiny, train one epoch, bench: the installed command, from a folder outside the checkout."""
    steps = [
        ("synth", "--out", "world", "--preset", "tiny", "--workers", "1"),
        ("train", "--data", "world/stills", "--config", "ldeq_demo", "--out", "ldeq", "--epochs", "1", "--device", "cpu"),
        ("bench", "--model", "ldeq/checkpoint.pth.tar", "--stills", "world/stills", "--videos", "world/videos", "--out", "bench", "--rwr-iters", "1", "--filters", "ema"),
    ]
    for step in steps:
        result = run_installed(installed, tmp_path, str(installed / "wflwv"), *step)
        assert result.returncode == 0, f"wflwv {' '.join(step)}:\n{result.stderr[-2000:]}"
    assert (tmp_path / "bench" / "bench.json").is_file()
    assert "NME" in result.stdout
