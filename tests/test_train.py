import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import kill_wflwv_when
from wflwv import io
from wflwv.data.wflw import Face, WflwStills, write_annotations, write_image
from wflwv.errors import WflwvError
from wflwv.configs import MODELS
from wflwv.models import create_model, load_checkpoint, load_config, save_checkpoint
from wflwv.models.heatmaps import soft_argmax
from wflwv.models.ldeq import LDEQOutput, jacobian_frobenius, spectral_radius
from wflwv.stills import Augmentation, StillCrops, degrade
from wflwv.train import HISTORY_NAME, LOSSES, TrainSettings, landmark_disagreement, memory_kept, train, training_seconds
from test_families import write_config


def still_set(root, counts={"train": 64, "test": 8}):
    """Discs with landmarks scattered on them: enough for the loop to run, not to learn faces."""
    stills = WflwStills(root)
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        faces = []
        for index in range(count):
            centre = rng.uniform(40, 56, 2)
            image = np.full((96, 96, 3), 30, dtype=np.uint8)
            yy, xx = np.mgrid[:96, :96]
            image[(xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 24**2] = (210, 170, 150)
            name = f"{split}/{index}.png"
            write_image(root / "WFLW_images" / name, image)
            landmarks = centre + rng.uniform(-18, 18, (98, 2))
            landmarks[60], landmarks[72] = centre + (-12, -6), centre + (12, -6)
            faces.append(Face(landmarks, np.concatenate([centre - 24, centre + 24]), np.zeros(6, int), name))
        write_annotations(stills.annotation_path(split), faces)
    return stills


def test_training_writes_a_checkpoint_and_resumes_where_it_stopped(tmp_path):
    still_set(tmp_path / "stills")
    checkpoint = train(tmp_path / "stills", "ldeq_demo", tmp_path / "run", epochs=1)
    model, saved = load_checkpoint(checkpoint)
    assert [row["epoch"] for row in saved["history"]] == [1]
    first_weights = {k: v.clone() for k, v in model.state_dict().items()}

    train(tmp_path / "stills", "ldeq_demo", tmp_path / "run", epochs=2)
    model, saved = load_checkpoint(checkpoint)
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert list(history.epoch) == [1, 2] and history.loss.notna().all() and (history.solver_iterations > 0).all()
    assert saved["history"][0] == history.iloc[0].to_dict() | {"epoch": 1}
    assert (history.seconds > 0).all() and training_seconds(tmp_path / "run") == history.seconds.sum()
    assert any(not torch.equal(first_weights[k], v) for k, v in model.state_dict().items())

    train(tmp_path / "stills", "ldeq_demo", tmp_path / "run", epochs=1, force=True)
    assert [row["epoch"] for row in load_checkpoint(checkpoint)[1]["history"]] == [1]


def test_training_seconds_are_unknown_where_an_epoch_was_not_timed(tmp_path):
    io.save_parquet(tmp_path / HISTORY_NAME, pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0]}))  # a run trained before epochs were timed
    assert np.isnan(training_seconds(tmp_path))
    io.save_parquet(tmp_path / HISTORY_NAME, pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "seconds": [np.nan, 3.0]}))  # such a run resumed by a timed epoch
    assert np.isnan(training_seconds(tmp_path))


def test_a_run_killed_by_sigkill_and_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    still_set(tmp_path / "stills")
    straight, _ = load_checkpoint(train(tmp_path / "stills", "ldeq_demo", tmp_path / "straight", epochs=2))
    run = tmp_path / "run"
    checkpoint = run / "checkpoint.pth.tar"
    kill_wflwv_when(checkpoint.exists, "train", "--data", tmp_path / "stills", "--config", "ldeq_demo", "--out", run, "--epochs", 2)
    killed = load_checkpoint(checkpoint)[1]["history"]
    assert [row["epoch"] for row in killed] == [1]  # killed in the second epoch
    leftover = run / f"{io.PARTIAL_PREFIX}{checkpoint.name}.x7k2.tar"  # as a kill while saving leaves
    leftover.write_bytes(b"half a checkpoint")

    train(tmp_path / "stills", "ldeq_demo", run, epochs=2)
    resumed, saved = load_checkpoint(checkpoint)
    assert saved["history"][0] == killed[0] and [row["epoch"] for row in saved["history"]] == [1, 2]  # only the second epoch redone
    assert all(torch.equal(value, straight.state_dict()[name]) for name, value in resumed.state_dict().items())
    assert not leftover.exists()


def test_a_resume_must_be_the_same_run_or_is_refused_naming_the_difference(tmp_path):
    still_set(tmp_path / "stills")
    run = tmp_path / "run"
    checkpoint = train(tmp_path / "stills", "ldeq_demo", run, epochs=1)
    with pytest.raises(WflwvError, match=re.escape(f"{checkpoint}: checkpoint is of another run: seed 0 in the checkpoint, 1 now; use --force")):
        train(tmp_path / "stills", "ldeq_demo", run, epochs=1, seed=1)
    config = tmp_path / "faster.toml"
    config.write_text((MODELS / "ldeq_demo.toml").read_text().replace("lr = 2e-3", "lr = 3e-3"))
    assert load_config(config)["train"]["lr"] == 0.003
    with pytest.raises(WflwvError, match=re.escape("another run: config.train.lr 0.002 in the checkpoint, 0.003 now")):
        train(tmp_path / "stills", config, run, epochs=1)
    stills = WflwStills(tmp_path / "stills")
    face = stills.faces("train")[5]
    write_image(stills.image_path(face), 255 - stills.load_image(face))
    with pytest.raises(WflwvError, match=re.escape("another run: data: the stills' files differ")):
        train(tmp_path / "stills", "ldeq_demo", run, epochs=1)
    train(tmp_path / "stills", "ldeq_demo", run, epochs=1, seed=1, force=True)
    model, saved = load_checkpoint(checkpoint)
    save_checkpoint(checkpoint, model, extra={key: saved[key] for key in ("optimizer", "schedule", "history")})  # as before runs were recorded
    with pytest.raises(WflwvError, match="checkpoint does not record its run"):
        train(tmp_path / "stills", "ldeq_demo", run, epochs=2, seed=1)


def test_a_checkpoint_from_before_a_train_setting_existed_resumes_as_with_its_default(tmp_path):
    """...and a config's tables that training does not read (ldeq_demo's [ablation]) are not part of the run."""
    still_set(tmp_path / "stills")
    checkpoint = train(tmp_path / "stills", "ldeq_demo", tmp_path / "run", epochs=1)
    model, saved = load_checkpoint(checkpoint)
    run = json.loads(saved["run"])
    del run["config"]["train"]["consistency_weight"]  # as wflwv wrote it before that setting
    save_checkpoint(checkpoint, model, extra={key: saved[key] for key in ("optimizer", "schedule", "random", "history")} | {"run": json.dumps(run)})
    demo = (MODELS / "ldeq_demo.toml").read_text()
    other_ablation = tmp_path / "other_ablation.toml"
    other_ablation.write_text(demo.replace("consistency_weight = 1.0", "consistency_weight = 0.0"))  # only [ablation] has it
    train(tmp_path / "stills", other_ablation, tmp_path / "run", epochs=2)
    assert [row["epoch"] for row in load_checkpoint(checkpoint)[1]["history"]] == [1, 2]
    consistent = tmp_path / "consistent.toml"
    consistent.write_text(demo.replace("[train]\n", "[train]\nconsistency_weight = 1.0\n", 1))
    with pytest.raises(WflwvError, match=re.escape("another run: config.train.consistency_weight 0.0 in the checkpoint, 1.0 now")):
        train(tmp_path / "stills", consistent, tmp_path / "run", epochs=3)


def test_augmented_crops_keep_landmarks_on_the_face(tmp_path):
    stills = still_set(tmp_path, {"train": 4})
    faces = stills.faces("train")
    plain = StillCrops(stills, faces, 64)
    augmented = StillCrops(stills, faces, 64, Augmentation(blur_prob=0, occlusion_prob=0), seed=3)
    for index in range(len(faces)):
        image, points = augmented[index]
        pixels = np.clip((points.numpy() * 64).round().astype(int), 0, 63)
        mean_red = image[0, pixels[:, 1], pixels[:, 0]].mean()
        assert mean_red > plain[index][0][0].mean()  # points land on the bright disc, not the dark background
    a, b = augmented[1], augmented[1]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # same (seed, epoch, index), same sample
    augmented.epoch = 1
    assert not torch.equal(augmented[1][1], b[1])


def test_low_light_darkens_by_the_gain_range_and_adds_noise():
    grey = np.full((64, 64, 3), 200, np.uint8)
    only_dark = Augmentation(blur_prob=0, occlusion_prob=0, low_light_prob=1, low_light_min_gain=0.3, low_light_max_noise=10)
    for seed in range(5):
        dark = degrade(grey, only_dark, np.random.default_rng(seed)).astype(float)
        assert 0.3 * 200 - 1 < dark.mean() < 0.5 * 200 + 1
        assert 0.3 * 10 * 0.8 < dark.std() < 10 * 1.2
    assert np.array_equal(degrade(grey, Augmentation(blur_prob=0, occlusion_prob=0), np.random.default_rng(0)), grey)


def plain_train(config: dict) -> dict:
    """A config's [train] table without its equilibrium terms, to which a test adds the ones it tests."""
    return {key: value for key, value in config["train"].items() if not key.startswith(("jacobian", "warm_start", "spectral", "consistency", "memory"))}


def test_each_training_loss_sends_gradients_to_every_cell_weight():
    model = create_model(load_config("ldeq_demo")).train()
    images, targets = torch.randn(4, 3, 64, 64), torch.rand(4, 98, 2)
    for loss in LOSSES.values():
        model.zero_grad()
        loss(model(images), targets).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.deq_layer.parameters())


@pytest.mark.parametrize("table, problem", [
    ({"loss": "l7"}, "unknown training loss 'l7'"), ({"epochz": 3}, "invalid [train] table"),
    ({"warm_start_augmentation": {"low_light_prob": 1.5}}, "invalid [train] table: augmentation low_light_prob must be a probability in [0, 1], got 1.5"),
    ({"warm_start_augmentation": {"low_light_prob": 1.0}}, "[train] warm_start_augmentation needs a term that solves it"),
    ({"warm_start_augmentation": {}, "spectral_weight": 1.0}, "[train] warm_start_augmentation needs a term that solves it"),  # on the first solve
    ({"augmentation": {"low_light_min_gain": 0.8}}, "invalid [train] table: augmentation low_light_min_gain must be in (0, 0.5], got 0.8"),
    ({"spectral_solve": "last"}, "[train] spectral_solve: 'last' is none of first, warm_start"),
])
def test_a_bad_train_table_is_an_error_naming_the_config(table, problem):
    with pytest.raises(WflwvError, match=re.escape(f"my_config: {problem}")):
        TrainSettings.from_config({"train": table}, source="my_config")


def test_train_splits_add_faces_to_training_and_the_cli_takes_the_device(tmp_path):
    """The paper's oracle members train on train + test: 32 + 40 faces make two steps of 32, the train split alone one."""
    from click.testing import CliRunner

    from wflwv.cli import cli

    still_set(tmp_path / "stills", {"train": 32, "test": 40})
    steps = {}
    for splits in ("train", "train,test"):
        out = tmp_path / splits
        result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "stills"), "--out", str(out), "--epochs", "1", "--device", "cpu", "--train-splits", splits])
        assert result.exit_code == 0, result.output
        steps[splits] = load_checkpoint(out / "checkpoint.pth.tar")[1]["schedule"]["last_epoch"]
    assert steps == {"train": 1, "train,test": 2}


def test_the_hutchinson_estimate_is_the_squared_frobenius_norm_per_dimension():
    torch.manual_seed(0)
    matrix = torch.randn(2, 6, 6)
    z = torch.randn(2, 6, requires_grad=True)
    fz = torch.einsum("bij,bj->bi", matrix, z)
    estimate = jacobian_frobenius(fz, z, vectors=4000)
    np.testing.assert_allclose(estimate.detach(), matrix.pow(2).sum(dim=(1, 2)) / 6, rtol=0.08)


@pytest.mark.parametrize("estimate, option", [("jacobian", {"jacobian_vectors": 2}), ("spectral_radius", {"spectral_steps": 5})])
def test_each_jacobian_term_lowers_its_estimate_at_the_fixed_point(estimate, option):
    model = create_model(load_config("ldeq_demo")).train()
    images = torch.randn(4, 3, 64, 64)
    optimizer = torch.optim.SGD(model.deq_layer.parameters(), lr=0.05)
    estimates = []
    for _ in range(6):
        torch.manual_seed(1)  # the same random vectors at every step
        value = getattr(model(images, **option), estimate).mean()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        estimates.append(value.item())
    assert estimates[-1] < 0.5 * estimates[0]
    with pytest.raises(ValueError, match="implicit training only"):
        model.eval()(images, **option)


def test_the_power_iteration_finds_the_spectral_radius_of_a_non_symmetric_map():
    torch.manual_seed(0)
    basis = torch.randn(2, 6, 6)  # not orthogonal: J = B diag B^-1 is not symmetric, its norm above its radius
    eigenvalues = torch.tensor([[0.9, 0.5, 0.3, -0.2, 0.1, 0.05], [-0.7, 0.4, 0.3, 0.2, 0.1, 0.0]])
    matrix = basis @ torch.diag_embed(eigenvalues) @ torch.linalg.inv(basis)
    z = torch.randn(2, 6, requires_grad=True)
    fz = torch.einsum("bij,bj->bi", matrix, z)
    assert (torch.linalg.matrix_norm(matrix, ord=2) > 1.05 * torch.tensor([0.9, 0.7])).all()
    np.testing.assert_allclose(spectral_radius(fz, z, steps=60).detach(), [0.9, 0.7], rtol=0.01)


def test_the_spectral_term_runs_in_the_last_spectral_epochs_and_logs_its_estimate(tmp_path):
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    terms = {"batch_size": 4, "warm_start_weight": 0.0, "spectral_weight": 1.0, "spectral_target": 0.0, "spectral_epochs": 1}
    train(tmp_path / "stills", write_config(tmp_path / "ldeq.toml", "ldeq", config["args"], plain_train(config) | terms), tmp_path / "run", epochs=2)
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert np.isnan(history.spectral_radius[0]) and history.spectral_radius[1] > 0


def test_the_spectral_term_bounds_the_solve_spectral_solve_names(tmp_path):
    """On the warm-start solve, the spectral term runs only where the warm-start term does (the last epoch here), and adds to its loss."""
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    late = {"batch_size": 4, "warm_start_weight": 1.0, "warm_start_epochs": 1, "spectral_target": 0.0}
    histories = {}
    for name, terms in (("first", {"spectral_weight": 1.0}), ("warm", {"spectral_weight": 1.0, "spectral_solve": "warm_start"}), ("none", {})):
        train(tmp_path / "stills", write_config(tmp_path / f"{name}.toml", "ldeq", config["args"], plain_train(config) | late | terms), tmp_path / name, epochs=2)
        histories[name] = pd.read_parquet(tmp_path / name / "history.parquet")
    assert (histories["first"].spectral_radius > 0).all()
    assert np.isnan(histories["warm"].spectral_radius[0]) and histories["warm"].spectral_radius[1] > 0
    assert histories["warm"].loss[0] == histories["none"].loss[0]
    assert histories["warm"].loss[1] > histories["none"].loss[1]


def test_training_with_the_equilibrium_terms_logs_the_jacobian(tmp_path):
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    path = write_config(tmp_path / "ldeq.toml", "ldeq", config["args"], plain_train(config) | {"batch_size": 4, "jacobian_weight": 1.0, "warm_start_weight": 0.5})
    train(tmp_path / "stills", path, tmp_path / "run", epochs=1)
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert (history.jacobian > 0).all() and history.loss.notna().all()


@pytest.mark.parametrize("term", ["jacobian_weight", "memory_weight"])
def test_equilibrium_terms_need_an_implicit_ldeq(tmp_path, term):
    still_set(tmp_path / "stills", {"train": 4, "test": 2})
    config = load_config("hrnet_demo")
    path = write_config(tmp_path / "hrnet.toml", "hrnet", config["args"], config["train"] | {term: 1.0})
    with pytest.raises(WflwvError, match="jacobian_weight, warm_start_weight, spectral_weight, consistency_weight and memory_weight need an LDEQ"):
        train(tmp_path / "stills", path, tmp_path / "run", epochs=1)


def test_the_warm_start_term_runs_in_the_last_warm_start_epochs_only(tmp_path):
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    plain, late = (write_config(tmp_path / f"{name}.toml", "ldeq", config["args"], plain_train(config) | {"batch_size": 4} | terms)
                   for name, terms in (("plain", {"warm_start_weight": 0.0}), ("late", {"warm_start_weight": 1.0, "warm_start_epochs": 1})))
    histories = {}
    for name, path in (("plain", plain), ("late", late)):
        train(tmp_path / "stills", path, tmp_path / name, epochs=2)
        histories[name] = pd.read_parquet(tmp_path / name / "history.parquet")
    assert histories["late"].loss[0] == histories["plain"].loss[0]  # epoch 1: no term, the same run
    assert histories["late"].loss[1] > histories["plain"].loss[1]  # epoch 2: the term's loss is added


def test_the_warm_start_solve_sees_the_harder_view_of_the_batch(tmp_path):
    """Only the warm-start term's solve changes with warm_start_augmentation: same first epoch, another loss in the second."""
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    late = {"batch_size": 4, "warm_start_weight": 1.0, "warm_start_epochs": 1}
    dark = {"warm_start_augmentation": {"blur_prob": 0.0, "occlusion_prob": 0.0, "low_light_prob": 1.0}}
    histories = {}
    for name, terms in (("late", late), ("dark", late | dark)):
        train(tmp_path / "stills", write_config(tmp_path / f"{name}.toml", "ldeq", config["args"], plain_train(config) | terms), tmp_path / name, epochs=2)
        histories[name] = pd.read_parquet(tmp_path / name / "history.parquet")
    assert histories["dark"].loss[0] == histories["late"].loss[0]
    assert histories["dark"].loss[1] != histories["late"].loss[1]


def test_memory_kept_is_the_least_squares_share_of_the_start_that_two_tracked_evaluations_keep():
    torch.manual_seed(0)
    model = create_model(load_config("ldeq_demo")).train()
    images = torch.randn(4, 3, 64, 64)
    start = model(torch.randn(4, 3, 64, 64)).z_star  # other images' fixed points: a start far from these images' own
    kept = memory_kept(model, images, start)
    with torch.no_grad():
        fixed = soft_argmax(model(images, z0=start).z_star[:, :98])
    z, injection = start, model.tail(images)
    for _ in range(2):
        z = model.deq_layer.cell(z, injection)
    after, offset = soft_argmax(z[:, :98]) - fixed, soft_argmax(start[:, :98]) - fixed
    expected = (after * offset).sum() / offset.pow(2).sum()
    torch.testing.assert_close(kept, expected)
    assert 0 < kept.item() < 1  # a contraction keeps some of the start, not all
    kept.backward()
    assert model.deq_layer.cell.tail.conv.weight.grad.abs().sum() > 0  # through the evaluations, not an implicit gradient


def test_the_memory_term_runs_in_the_last_memory_epochs_and_logs_what_two_evaluations_keep(tmp_path):
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    histories = {}
    for name, terms in (("memory", {"memory_weight": 1.0, "memory_floor": 1.0, "memory_epochs": 1}), ("none", {})):
        train(tmp_path / "stills", write_config(tmp_path / f"{name}.toml", "ldeq", config["args"], plain_train(config) | {"batch_size": 4} | terms), tmp_path / name, epochs=2)
        histories[name] = pd.read_parquet(tmp_path / name / "history.parquet")
    assert histories["memory"].loss[0] == histories["none"].loss[0]
    assert np.isnan(histories["memory"].memory_kept[0]) and 0 < histories["memory"].memory_kept[1] < 1
    assert histories["memory"].loss[1] > histories["none"].loss[1]  # a floor of 1: the term is on in every batch


def test_landmark_disagreement_is_the_mean_squared_distance_in_heatmap_pixels():
    heatmaps = torch.zeros(2, 98, 16, 16)
    one = LDEQOutput(torch.rand(2, 98, 2), heatmaps, torch.zeros(2), torch.zeros(2), heatmaps)
    shifted = dataclasses.replace(one, landmarks=one.landmarks + torch.tensor([3.0, 4.0]) / 16)  # 5 heatmap pixels away
    assert torch.isclose(landmark_disagreement(one, shifted), torch.tensor(25.0))
    assert landmark_disagreement(one, one) == 0


def test_the_consistency_term_adds_the_cold_and_warm_solves_disagreement_where_the_warm_start_term_runs(tmp_path):
    still_set(tmp_path / "stills", {"train": 8, "test": 4})
    config = load_config("ldeq_demo")
    late = {"batch_size": 4, "warm_start_weight": 1.0, "warm_start_epochs": 1}
    histories = {}
    for name, terms in (("none", {}), ("consistent", {"consistency_weight": 1.0})):
        train(tmp_path / "stills", write_config(tmp_path / f"{name}.toml", "ldeq", config["args"], plain_train(config) | late | terms), tmp_path / name, epochs=2)
        histories[name] = pd.read_parquet(tmp_path / name / "history.parquet")
    consistent, none = histories["consistent"], histories["none"]
    assert "disagreement" not in none and np.isnan(consistent.disagreement[0]) and consistent.disagreement[1] > 0
    assert consistent.loss[0] == none.loss[0] and consistent.loss[1] > none.loss[1]


def test_the_harder_view_is_the_same_crop_degraded_once_more(tmp_path):
    stills = still_set(tmp_path, {"train": 4})
    faces = stills.faces("train")
    augment = Augmentation(blur_prob=0, occlusion_prob=0)
    plain = StillCrops(stills, faces, 64, augment, seed=2)
    darker = StillCrops(stills, faces, 64, augment, seed=2, harder=Augmentation(blur_prob=0, occlusion_prob=0, low_light_prob=1))
    for index in range(len(faces)):
        image, points = plain[index]
        same, dark, same_points = darker[index]
        assert torch.equal(same, image) and torch.equal(same_points, points)
        assert dark.mean() < image.mean() - 0.5  # normalised units: a gain of at most 0.5 on a bright disc
