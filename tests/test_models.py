import argparse
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

from wflwv.configs import MODELS
from wflwv.errors import WflwvError
from wflwv.models import create_model, load_checkpoint, load_config, model_args, save_checkpoint
from wflwv.models.heatmaps import heatmap_nll, normalize_heatmaps, soft_argmax
from wflwv.models.ldeq import LDEQ


def tiny_ldeq(**overrides) -> LDEQ:
    args = {**load_config("ldeq_demo")["args"], "injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, **overrides}
    return LDEQ(argparse.Namespace(**args))


def test_paper_model_has_the_released_layout_and_16_5M_parameters():
    with torch.device("meta"):
        model = create_model(load_config("ldeq_paper"))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 16.5
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    # stem widths 224/4, 224/2, 224; hourglass widths 224, 248, 272, 296, 320; z_width 98
    assert shapes["tail.0.conv.weight"] == (56, 3, 7, 7)
    assert shapes["tail.1.conv.weight"] == (112, 56, 3, 3)
    assert shapes["tail.3.conv.weight"] == (224, 112, 3, 3)
    assert shapes["tail.3.norm.running_var"] == (224,)
    assert shapes["deq_layer.cell.tail.conv.weight"] == (224, 98 + 224, 1, 1)
    assert shapes["deq_layer.cell.hourglass.same1.conv.weight"] == (224, 224, 3, 3)
    assert shapes["deq_layer.cell.hourglass.upchan1.conv.weight"] == (248, 224, 3, 3)
    assert shapes["deq_layer.cell.hourglass.upchan4.conv.weight"] == (320, 296, 3, 3)
    assert shapes["deq_layer.cell.hourglass.bottlneck.conv.weight"] == (320, 320, 3, 3)
    assert shapes["deq_layer.cell.hourglass.downchan1.conv.weight"] == (296, 320, 3, 3)
    assert shapes["deq_layer.cell.hourglass.downchan2.conv.weight"] == (296, 592, 1, 1)
    assert shapes["deq_layer.cell.hourglass.same5.conv.weight"] == (296, 296, 5, 5)
    assert shapes["deq_layer.cell.hourglass.downchan8.conv.weight"] == (224, 448, 1, 1)
    assert shapes["deq_layer.cell.hourglass.same8.norm.weight"] == (224,)
    assert shapes["deq_layer.cell.head.conv.weight"] == (98, 224, 1, 1)
    assert not any(key.startswith("deq_layer.cell.head.norm") for key in shapes)
    blocks = {key.split(".")[3] for key in shapes if key.startswith("deq_layer.cell.hourglass.")}
    assert blocks == {f"same{i}" for i in range(1, 9)} | {f"upchan{i}" for i in range(1, 5)} | {f"downchan{i}" for i in range(1, 9)} | {"bottlneck"}


def test_normalize_heatmaps_is_exp_of_beta_times_distance_to_the_peak():
    features = torch.tensor([0.0, 1.0, 3.0, 2.0]).view(1, 1, 2, 2)
    expected = torch.exp(0.5 * torch.tensor([-3.0, -2.0, 0.0, -1.0])).view(1, 1, 2, 2)
    torch.testing.assert_close(normalize_heatmaps(features, beta=0.5), expected)


def test_soft_argmax_reads_pixel_index_over_size():
    heatmaps = torch.zeros(1, 2, 16, 16)
    heatmaps[0, 0, 3, 5] = 1.0  # row 3, column 5
    heatmaps[0, 1, 8, 2] = heatmaps[0, 1, 8, 6] = 0.5  # two equal peaks: their midpoint
    torch.testing.assert_close(soft_argmax(heatmaps), torch.tensor([[[5 / 16, 3 / 16], [4 / 16, 8 / 16]]]))


def test_one_iteration_is_one_evaluation_of_f_from_zero():
    torch.manual_seed(0)
    model = tiny_ldeq().eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        output = model(images, max_iters=1)
        z = model.deq_layer.cell(torch.zeros(2, 98, 16, 16), model.tail(images))
    torch.testing.assert_close(output.z_star, z)
    torch.testing.assert_close(output.landmarks, soft_argmax(z))
    assert output.iterations.tolist() == [1, 1]
    torch.testing.assert_close(output.residual, torch.ones(2))  # ||f(0) - 0|| / ||f(0)||
    assert 0 < z.min() and z.amax(dim=(2, 3)).eq(1).all()  # sigma: in (0, 1], each heatmap peaks at exactly 1


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_injections_share_of_the_first_convolution_computed_once_gives_f(layout):
    """Evaluation solves from Cell.inject (once a solve); f from it equals f over the concatenation [z, x], in either layout."""
    torch.manual_seed(0)
    model = tiny_ldeq().eval().to(memory_format=layout)
    cell = model.deq_layer.cell
    with torch.no_grad():
        cell.tail.conv.bias.normal_()  # zero as initialised: the bias must be in the injection's share once
        z, injection = torch.rand(2, 98, 16, 16).to(memory_format=layout), model.tail(torch.randn(2, 3, 64, 64).to(memory_format=layout))
        torch.testing.assert_close(cell(z, cell.inject(injection), injected=True), cell(z, injection))


def test_extra_latent_heatmaps_are_solved_for_but_not_read_out():
    model = tiny_ldeq(cell_extra_latent_width=4, z_width=102).eval()
    with torch.no_grad():
        output = model(torch.randn(2, 3, 64, 64), max_iters=2)
    assert output.z_star.shape == (2, 102, 16, 16)
    torch.testing.assert_close(output.landmarks, soft_argmax(output.z_star[:, :98]))


def test_caps_per_sample_and_the_config_cap():
    torch.manual_seed(0)
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=4, solver="fpi").eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert model(images).iterations.tolist() == [4, 4, 4]
        assert model(images, max_iters=torch.tensor([1, 3, 2])).iterations.tolist() == [1, 3, 2]
        # plain iteration from a given z0: one iteration from z* after two is the solve capped at three
        after_two = model(images, max_iters=2).z_star
        torch.testing.assert_close(model(images, z0=after_two, max_iters=1).z_star, model(images, max_iters=3).z_star, atol=0, rtol=0)


def parameter_gradient(model: LDEQ, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    F.mse_loss(model(images).landmarks, targets).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_implicit_gradient_equals_the_gradient_through_a_converged_unrolled_solve():
    # beta 0.1 keeps the untrained cell a contraction, so both solves converge
    settings = dict(cell_softargmax_beta=0.1, cell_use_bn_for_explicit=False, rel_diff_target=1e-6, anderson_lam=1e-8, max_iters=60, explicit_depth=60)
    images, targets = torch.randn(2, 3, 64, 64), torch.rand(2, 98, 2)
    torch.manual_seed(0)
    implicit = tiny_ldeq(model_mode="implicit", **settings).train()
    torch.manual_seed(0)
    explicit = tiny_ldeq(model_mode="explicit", **settings).train()
    implicit_gradient = parameter_gradient(implicit, images, targets)
    explicit_gradient = parameter_gradient(explicit, images, targets)
    assert F.cosine_similarity(implicit_gradient, explicit_gradient, dim=0) > 0.9999
    assert (implicit_gradient - explicit_gradient).norm() < 1e-3 * explicit_gradient.norm()


def saved_tensor_bytes(model: LDEQ, images: torch.Tensor, max_iters: int) -> int:
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(images, max_iters=max_iters)
    output.landmarks.sum().backward()
    return total


def test_implicit_training_memory_does_not_grow_with_forward_iterations():
    images = torch.randn(2, 3, 64, 64)
    implicit = tiny_ldeq(model_mode="implicit", rel_diff_target=0.0).train()
    explicit = tiny_ldeq(model_mode="explicit", rel_diff_target=0.0).train()
    assert saved_tensor_bytes(implicit, images, 2) == saved_tensor_bytes(implicit, images, 8)
    assert saved_tensor_bytes(explicit, images, 8) > 2 * saved_tensor_bytes(explicit, images, 2)


def test_training_reports_solver_iterations():
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=3).train()
    output = model(torch.randn(2, 3, 64, 64))
    assert output.iterations.tolist() == [3, 3] and output.landmarks.requires_grad and not output.z_star.requires_grad


# --- configs ---


def demo_config_text(**replacements) -> str:
    """The demo config's TOML with some `name = value` lines replaced."""
    text = (MODELS / "ldeq_demo.toml").read_text()
    for name, value in replacements.items():
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", text, flags=re.MULTILINE)
        assert count == 1
    return text


def test_load_config_by_name_and_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(demo_config_text(epochs=3))
    by_name, by_path = load_config("ldeq_demo"), load_config(path)
    assert by_path["args"] == by_name["args"] and by_path["train"] == by_name["train"] | {"epochs": 3}
    assert model_args(by_path) == argparse.Namespace(**by_name["args"])
    assert isinstance(create_model(by_path), LDEQ)


def test_a_config_may_set_the_released_inference_options(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(demo_config_text(max_iters="3\ntake_one_less_inference_step = true\ncell_learn_softargmax_beta = true"))
    args = model_args(load_config(path))
    assert args.take_one_less_inference_step and args.cell_learn_softargmax_beta


@pytest.mark.parametrize(
    "text, problem",
    [
        ('family = "ldeq"\n', "no \\[args\\] table"),
        (demo_config_text(family='"vit"'), "unknown model family 'vit'"),
        (demo_config_text(heatmap_size=32), r"im_size \(64\) must be 4 x heatmap_size \(32\)"),
        (demo_config_text(heatmap_size=24, im_size=96), "heatmap_size \\(24\\) must be a multiple of 16"),
        (demo_config_text(solver='"broyden"'), "solver = 'broyden' is not supported"),
        (demo_config_text(cell_extra_latent_width=4), r"z_width \(98\) must be n_keypoints \(98\) \+ cell_extra_latent_width \(4\)"),
        (demo_config_text(cell_gn_groups=3), "divisible"),
        (demo_config_text().replace("max_iters", "max_iter"), r"\[args\] max_iter: not an option of the ldeq family"),
        (demo_config_text(rel_diff_target="nan"), "rel_diff_target.*nan is not a finite number"),
        ("family = \n", "invalid TOML"),
    ],
)
def test_bad_configs_are_refused_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(WflwvError, match=problem) as error:
        load_config(path)
    assert str(error.value).startswith(str(path))


def test_unknown_config_name_lists_the_known_ones():
    with pytest.raises(WflwvError, match="ldeq_demo, ldeq_paper"):
        load_config("no_such_model")


# --- checkpoints ---


def released_checkpoint(path, model: LDEQ, **changes) -> None:
    """A checkpoint written as the authors' code writes it: a plain torch.save of args and state_dict."""
    torch.save({"args": model.args, "state_dict": {**model.state_dict(), **changes}}, path)


def test_a_released_format_checkpoint_loads_with_its_weights(tmp_path):
    torch.manual_seed(0)
    model = tiny_ldeq().eval()
    released_checkpoint(tmp_path / "final.pth.tar", model)
    restored, checkpoint = load_checkpoint(tmp_path / "final.pth.tar")
    assert vars(restored.args) == vars(model.args) and set(checkpoint) == {"args", "state_dict"}
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(images).landmarks, model(images).landmarks, atol=0, rtol=0)


def test_save_checkpoint_round_trip_keeps_extra_state(tmp_path):
    model = tiny_ldeq()
    optimizer = torch.optim.AdamW(model.parameters())
    F.mse_loss(model(torch.randn(2, 3, 64, 64)).landmarks, torch.rand(2, 98, 2)).backward()
    optimizer.step()
    save_checkpoint(tmp_path / "run" / "checkpoint.pth.tar", model, extra={"optimizer": optimizer.state_dict(), "history": [{"epoch": 1, "loss": 0.5}]})
    restored, checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pth.tar")
    assert checkpoint["history"] == [{"epoch": 1, "loss": 0.5}]
    torch.testing.assert_close(checkpoint["optimizer"]["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    for key, value in model.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[key], value)
    assert os.listdir(tmp_path / "run") == ["checkpoint.pth.tar"]


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"args": tiny_ldeq().args, "state_dict": {}, "payload": RunsCode(marker)}, path)
    with pytest.raises(WflwvError, match="refused to unpickle posix.mkdir"):
        load_checkpoint(path)
    assert not marker.exists()


def test_weights_of_another_shape_are_refused_naming_the_key(tmp_path):
    model = tiny_ldeq()
    released_checkpoint(tmp_path / "wide.pth", model, **{"deq_layer.cell.head.conv.weight": torch.zeros(98, 16, 1, 1)})
    with pytest.raises(WflwvError, match=r"'deq_layer.cell.head.conv.weight' has shape \(98, 16, 1, 1\), the model's is \(98, 8, 1, 1\)"):
        load_checkpoint(tmp_path / "wide.pth")


def test_missing_and_unexpected_weights_are_refused_naming_the_key(tmp_path):
    model = tiny_ldeq()
    state = model.state_dict()
    del state["tail.1.norm.running_mean"]
    torch.save({"args": model.args, "state_dict": state}, tmp_path / "missing.pth")
    with pytest.raises(WflwvError, match="missing key 'tail.1.norm.running_mean'"):
        load_checkpoint(tmp_path / "missing.pth")
    released_checkpoint(tmp_path / "extra.pth", model, **{"deq_layer.cell.extra.weight": torch.zeros(1)})
    with pytest.raises(WflwvError, match="unexpected key 'deq_layer.cell.extra.weight'"):
        load_checkpoint(tmp_path / "extra.pth")


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    (tmp_path / "text.pth").write_text("not a checkpoint\n" * 10)
    released_checkpoint(tmp_path / "whole.pth", tiny_ldeq())
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "whole.pth").read_bytes()[:5000])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "tensors.pth")
    torch.save({"args": argparse.Namespace(im_size=64), "state_dict": {}}, tmp_path / "partial_args.pth")
    for name, problem in [
        ("text.pth", "not a PyTorch checkpoint"),
        ("truncated.pth", "not a PyTorch checkpoint"),
        ("tensors.pth", "expected a dict with 'args'"),
        ("partial_args.pth", "invalid ldeq args: missing options: heatmap_size"),
        ("absent.pth", "no such checkpoint file"),
    ]:
        with pytest.raises(WflwvError, match=problem) as error:
            load_checkpoint(tmp_path / name)
        assert str(error.value).startswith(str(tmp_path / name))


def test_output_heatmaps_are_probabilities_whose_soft_argmax_is_the_landmarks():
    model = create_model(load_config("ldeq_demo")).eval()
    with torch.no_grad():
        output = model(torch.randn(2, 3, 64, 64))
    assert output.heatmaps.shape == (2, 98, 16, 16)
    torch.testing.assert_close(output.heatmaps.sum(dim=(2, 3)), torch.ones(2, 98))
    torch.testing.assert_close(soft_argmax(output.heatmaps), output.landmarks)


def test_heatmap_nll_of_sure_uniform_and_split_heatmaps():
    sure = torch.zeros(1, 1, 8, 8)
    sure[0, 0, 5, 3] = 1  # row 5, column 3: the point (3/8, 5/8)
    assert heatmap_nll(sure, torch.tensor([[[3 / 8, 5 / 8]]])).item() == pytest.approx(0, abs=1e-6)
    uniform = torch.full((1, 1, 8, 8), 1 / 64)
    assert heatmap_nll(uniform, torch.tensor([[[0.3, 0.6]]])).item() == pytest.approx(math.log(64))
    split = torch.full((1, 1, 8, 8), 1e-12)
    split[0, 0, 2, 4] = split[0, 0, 2, 5] = 0.5
    assert heatmap_nll(split, torch.tensor([[[4.5 / 8, 2 / 8]]])).item() == pytest.approx(math.log(2), abs=1e-6)
