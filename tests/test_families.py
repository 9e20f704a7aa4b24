import argparse
import dataclasses
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wflwv.data.wflw import WflwStills
from wflwv.errors import WflwvError
from wflwv.models import create_model, load_checkpoint, load_config, multiply_adds, param_count, save_checkpoint
from wflwv.models.ensemble import load_ensemble
from wflwv.models.heatmaps import soft_argmax
from wflwv.models.hourglass import StackedHourglass
from wflwv.models.ldeq import LDEQ
from wflwv.stills import Augmentation, StillCrops
from wflwv.synth import PRESETS, generate
from wflwv.train import training_loss, train

DEMO_CONFIGS = {"unet": "unet_demo", "hrnet": "hrnet_demo", "hourglass": "hourglass_demo", "regression": "regression_demo"}
SHRINK = {  # smaller widths than the demo configs', where a test is not about the demo config itself
    "unet": {"base_width": 4},
    "hrnet": {},  # timm's smallest HRNet
    "hourglass": {"base_width": 8, "width_increment": 2},
    "regression": {},
}


def demo_model(family: str, **overrides) -> nn.Module:
    config = load_config(DEMO_CONFIGS[family])
    return create_model(config | {"args": config["args"] | overrides})


@pytest.mark.parametrize("family", DEMO_CONFIGS)
def test_demo_models_output_landmarks_and_heatmaps_that_read_out_to_them(family):
    torch.manual_seed(0)
    model = create_model(load_config(DEMO_CONFIGS[family])).eval()
    assert model.args.im_size == 64
    with torch.no_grad():
        output = model(torch.randn(2, 3, 64, 64))
    assert output.landmarks.shape == (2, 98, 2)
    assert output.landmarks.min() >= 0 and output.landmarks.max() <= 1
    if family == "regression":
        assert not hasattr(output, "heatmaps")
        return
    assert model.args.heatmap_size == 16 and output.heatmaps.shape == (2, 98, 16, 16)
    assert output.heatmaps.min() >= 0
    torch.testing.assert_close(output.heatmaps.sum(dim=(2, 3)), torch.ones(2, 98))
    torch.testing.assert_close(soft_argmax(output.heatmaps), output.landmarks)


@pytest.mark.parametrize("family", DEMO_CONFIGS)
def test_checkpoints_record_the_family_and_round_trip(tmp_path, family):
    torch.manual_seed(0)
    model = demo_model(family, **SHRINK[family]).eval()
    save_checkpoint(tmp_path / "model.pth.tar", model)
    restored, checkpoint = load_checkpoint(tmp_path / "model.pth.tar")
    assert checkpoint["family"] == family and type(restored) is type(model) and vars(restored.args) == vars(model.args)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(images).landmarks, model(images).landmarks, atol=0, rtol=0)


@pytest.mark.parametrize("family", DEMO_CONFIGS)
def test_a_few_optimisation_steps_on_a_fixed_batch_lower_the_loss(family):
    torch.manual_seed(0)
    model = create_model(load_config(DEMO_CONFIGS[family])).train()
    images, targets = torch.randn(2, 3, 64, 64), (0.2 + 0.6 * torch.rand(98, 2)).expand(2, 98, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(7):
        loss = training_loss(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_stacked_hourglass_supervises_every_stack():
    torch.manual_seed(0)
    model = demo_model("hourglass", base_width=8, width_increment=2, stacks=3).train()
    targets = torch.rand(2, 98, 2)
    output = model(torch.randn(2, 3, 64, 64))
    assert len(output.stacks) == 3 and output.stacks[-1].landmarks is output.landmarks and output.stacks[-1].heatmaps is output.heatmaps
    for stack in output.stacks:
        torch.testing.assert_close(soft_argmax(stack.heatmaps), stack.landmarks)
    per_stack = [F.mse_loss(stack.landmarks, targets) for stack in output.stacks]
    loss = training_loss(output, targets)
    assert not torch.allclose(per_stack[0], per_stack[-1])
    torch.testing.assert_close(loss, torch.stack(per_stack).mean())
    loss.backward()
    assert model.heads[0].weight.grad.abs().sum() > 0  # the first stack's own read-out is trained
    assert not torch.equal(model.hourglasses[0].same1.conv.weight, model.hourglasses[1].same1.conv.weight)  # weights of its own


def test_stacked_hourglass_stacks_are_the_ldeq_hourglass_block():
    ldeq_block = {k.removeprefix("deq_layer.cell.hourglass."): v.shape for k, v in create_model(load_config("ldeq_demo")).state_dict().items() if k.startswith("deq_layer.cell.hourglass.")}
    stack_block = {k: v.shape for k, v in demo_model("hourglass").hourglasses[1].state_dict().items()}
    without_norms = lambda shapes: {k: v for k, v in shapes.items() if ".norm." not in k}  # noqa: E731 (BatchNorm here, GroupNorm in LDEQ)
    assert without_norms(stack_block) == without_norms(ldeq_block) and "bottlneck.conv.weight" in stack_block


# --- training with wflwv.train ---


@pytest.fixture(scope="module")
def synthetic_stills(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, dataclasses.replace(PRESETS["tiny"], videos=0), workers=1)  # the tiny world's 30 + 24 stills
    return out / "stills"


def write_config(path, family: str, args: dict, train: dict | None = None) -> str:
    lines = [f'family = "{family}"', "[args]"] + [f"{key} = {json.dumps(value)}" for key, value in args.items()]
    tables = {key: value for key, value in (train or {}).items() if isinstance(value, dict)}
    lines += ["[train]"] + [f"{key} = {json.dumps(value)}" for key, value in (train or {}).items() if key not in tables]
    for name, table in tables.items():
        lines += [f"[train.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def tiny_config(tmp_path, family: str, lr: float = 2e-3, epochs: int = 1) -> str:
    """The family's demo model with shrunk widths, trained for short epochs (3 steps on the tiny world's stills)."""
    args = load_config(DEMO_CONFIGS[family])["args"] | SHRINK[family]
    return write_config(tmp_path / f"{family}_tiny.toml", family, args, {"epochs": epochs, "batch_size": 8, "lr": lr, "warmup_steps": 1})


def test_training_a_stacked_hourglass_on_synthetic_stills_lowers_its_loss(tmp_path, synthetic_stills):
    checkpoint = train(synthetic_stills, tiny_config(tmp_path, "hourglass", epochs=2), tmp_path / "run", device="cpu")
    model, saved = load_checkpoint(checkpoint)
    assert isinstance(model, StackedHourglass) and saved["family"] == "hourglass"
    first, second = saved["history"]
    assert set(first) == {"epoch", "loss", "test_nme", "seconds"}  # no solver iterations for a model without a solver
    assert second["loss"] < first["loss"] and 0 < second["test_nme"] < 1


def parameters_of(checkpoint) -> torch.Tensor:
    return torch.cat([p.flatten() for p in load_checkpoint(checkpoint)[0].parameters()])


def test_the_seed_draws_the_initial_weights_and_the_augmentations(tmp_path, synthetic_stills):
    frozen = tiny_config(tmp_path, "regression", lr=0.0)  # lr 0: the trained parameters are the initial ones
    weights = [parameters_of(train(synthetic_stills, frozen, tmp_path / f"run{run}", seed=seed, device="cpu")) for run, seed in enumerate((0, 1, 0))]
    assert not torch.equal(weights[0], weights[1])
    assert torch.equal(weights[0], weights[2])
    stills = WflwStills(synthetic_stills)
    faces = stills.faces("train")[:2]
    crops = [StillCrops(stills, faces, 64, Augmentation(), seed=seed) for seed in (0, 1, 0)]
    for index in range(2):
        assert not torch.equal(crops[0][index][1], crops[1][index][1])
        assert torch.equal(crops[0][index][1], crops[2][index][1])


# --- ensembles ---


def test_ensemble_configs_list_members_of_existing_configs():
    demo = load_ensemble("ensemble_demo")
    assert 4 <= len(demo) <= 6 and len(set(demo)) == len(demo)
    assert {load_config(config)["family"] for config, _ in demo} == {"unet", "hrnet", "hourglass"}
    paper = load_ensemble("ensemble_paper")
    assert len(paper) == 45 and len(set(paper)) == 45 and all(isinstance(seed, int) for _, seed in paper)
    for config in {config for config, _ in paper}:
        assert load_config(config)["args"]["im_size"] == 256 and load_config(config)["family"] in {"unet", "hrnet", "hourglass"}
    with pytest.raises(WflwvError, match="no such ensemble config"):
        load_ensemble("no_such_ensemble")


@pytest.mark.parametrize(
    "text, problem",
    [
        ('[[member]]\nconfig = "unet_demo"\nseeds = [1, 2, 1]\n', "member unet_demo with seed 1 is listed twice"),
        ('[[member]]\nconfig = "unet_demo"\nseed = 1\n', "member table 1 needs `config`"),
        ('[[member]]\nconfig = "unet_demo"\nseeds = [1]\n[[member]]\nconfig = "nope"\nseeds = [1]\n', "no such model config"),
        ('config = "unet_demo"\n', r"\[\[member\]\] tables"),
        ("[[member]\n", "invalid TOML"),
    ],
)
def test_bad_ensemble_configs_are_refused(tmp_path, text, problem):
    path = tmp_path / "ensemble.toml"
    path.write_text(text)
    with pytest.raises(WflwvError, match=problem):
        load_ensemble(path)


# --- bad args, sizes ---


@pytest.mark.parametrize(
    "family, overrides, problem",
    [
        ("hrnet", {"backbone": "resnet18"}, "backbone 'resnet18' is not a timm HRNet"),
        ("regression", {"backbone": "no_such_net"}, "backbone 'no_such_net' is not a timm model"),
        ("unet", {"heatmap_size": 24}, r"im_size \(64\) must be heatmap_size \(24\) times a power of 2"),
        ("unet", {"depth": 2}, r"depth \(2\) must go below the heatmap level \(2\)"),
        ("hourglass", {"heatmap_size": 32}, r"im_size \(64\) must be 4 x heatmap_size \(32\)"),
        ("hourglass", {"stacks": 0}, r"stacks \(0\) must be at least 1"),
        ("hourglass", {"base_width": 30}, r"base_width \(30\) must be a multiple of 4"),
    ],
)
def test_bad_family_args_are_refused_naming_the_file(tmp_path, family, overrides, problem):
    path = write_config(tmp_path / "bad.toml", family, load_config(DEMO_CONFIGS[family])["args"] | overrides)
    with pytest.raises(WflwvError, match=f"invalid {family} args: {problem}") as error:
        load_config(path)
    assert str(error.value).startswith(path)
    args = load_config(DEMO_CONFIGS[family])["args"]
    del args["im_size"]
    with pytest.raises(WflwvError, match="missing options: im_size"):
        load_config(write_config(tmp_path / "partial.toml", family, args))


# --- figures for the leaderboards ---


def test_multiply_adds_of_convolutions_and_a_linear_layer_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 8 x 8 x 8 outputs, 3 x 3 x 3 multiply-adds each
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 8 x 8 x 8 outputs, 3 x 3 each
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
    assert multiply_adds(model, 16) == 512 * 27 + 512 * 9 + 512 * 10
    assert param_count(model) == (8 * 27 + 8) + (8 * 9 + 8) + (512 * 10 + 10)
    assert model.training  # the count runs in eval mode and gives the model back as it was


def test_multiply_adds_count_every_solver_iteration():
    args = load_config("ldeq_demo")["args"] | {"injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, "solver": "fpi", "rel_diff_target": 0.0}
    counts = [multiply_adds(LDEQ(argparse.Namespace(**args | {"max_iters": cap})), 64) for cap in (1, 2, 3)]
    stem = multiply_adds(LDEQ(argparse.Namespace(**args)).tail, 64)
    assert counts[2] - counts[1] == counts[1] - counts[0] == counts[0] - stem > 0  # the stem, then one cell per iteration
