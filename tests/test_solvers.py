import functools

import pytest
import torch

from wflwv.models.solvers import anderson, fixed_point_iteration, residual

DIM = 16


def linear_contraction(seed: int, batch: int, spectrum=(-0.9, 0.9)):
    """f(z) = A_i z + b_i per sample i, eigenvalues of A_i in `spectrum`; returns f and the exact fixed points."""
    generator = torch.Generator().manual_seed(seed)
    rotations = torch.linalg.qr(torch.randn(batch, DIM, DIM, generator=generator, dtype=torch.float64))[0]
    # sample i contracts by a factor that shrinks with i, so samples converge after different numbers of iterations
    factors = torch.linspace(1.0, 0.3, batch, dtype=torch.float64)[:, None] * torch.linspace(*spectrum, DIM, dtype=torch.float64)
    matrices = rotations @ torch.diag_embed(factors) @ rotations.transpose(1, 2)
    offsets = torch.randn(batch, DIM, generator=generator, dtype=torch.float64)
    fixed_points = torch.linalg.solve(torch.eye(DIM, dtype=torch.float64) - matrices, offsets)

    def f(z, rows):
        return (matrices[rows] @ z[..., None])[..., 0] + offsets[rows]

    return f, fixed_points


def test_both_solvers_find_the_fixed_point_and_anderson_needs_fewer_iterations():
    f, fixed_points = linear_contraction(seed=0, batch=4, spectrum=(0.5, 0.95))
    z0 = torch.zeros(4, DIM, dtype=torch.float64)
    plain = fixed_point_iteration(f, z0, max_iters=1000, tol=1e-6, stop_mode="abs")
    accelerated = anderson(f, z0, max_iters=1000, tol=1e-6, stop_mode="abs", m=6, lam=1e-14)
    for result in (plain, accelerated):
        assert (result.residual < 1e-6).all()
        # the solution is f(x) with ||f(x) - x|| < 1e-6, f contracting by at most 0.95: within 0.95 / 0.05 * 1e-6
        assert ((result.z - fixed_points).norm(dim=1) < 19e-6).all()
    assert (accelerated.iterations < plain.iterations).all()
    assert accelerated.iterations.sum() * 3 < plain.iterations.sum()


def test_anderson_with_full_memory_solves_a_linear_map_like_gmres():
    f, fixed_points = linear_contraction(seed=0, batch=4, spectrum=(0.5, 0.95))
    result = anderson(f, torch.zeros(4, DIM, dtype=torch.float64), max_iters=1000, tol=1e-6, m=DIM, lam=1e-14)
    assert (result.iterations <= DIM + 1).all()


def test_anderson_solves_a_scalar_linear_map_on_its_third_evaluation():
    # x0 = 0, x1 = f(x0) = b; the residuals b and a*b combine to zero with weights summing to one,
    # which puts x2 exactly on b / (1 - a): its residual is zero.
    a, b = 0.5, 3.0
    result = anderson(lambda z, rows: a * z + b, torch.zeros(1, 1, dtype=torch.float64), max_iters=10, tol=1e-9, lam=1e-14)
    assert result.iterations.tolist() == [3]
    assert result.z.item() == pytest.approx(b / (1 - a), abs=1e-9)


def test_plain_iteration_is_f_applied_max_iters_times_when_the_tolerance_is_never_met():
    f, _ = linear_contraction(seed=1, batch=3)
    z0 = torch.randn(3, DIM, dtype=torch.float64)
    result = fixed_point_iteration(f, z0, max_iters=3, tol=0.0)
    rows = torch.arange(3)
    by_hand = f(f(f(z0, rows), rows), rows)
    torch.testing.assert_close(result.z, by_hand)
    assert result.iterations.tolist() == [3, 3, 3]
    torch.testing.assert_close(result.residual, residual(by_hand, f(f(z0, rows), rows), "rel"))


@pytest.mark.parametrize("solver", [anderson, fixed_point_iteration])
def test_the_iteration_cap_is_honoured_per_sample(solver):
    f, _ = linear_contraction(seed=2, batch=3)
    caps = torch.tensor([1, 4, 2])
    result = solver(f, torch.zeros(3, DIM, dtype=torch.float64), max_iters=caps, tol=0.0)
    assert result.iterations.tolist() == [1, 4, 2]


@pytest.mark.parametrize("solver", [anderson, fixed_point_iteration])
def test_each_sample_of_a_batch_gets_the_result_it_gets_alone(solver):
    f, _ = linear_contraction(seed=3, batch=5)
    z0 = torch.randn(5, DIM, dtype=torch.float64)
    caps = torch.tensor([40, 3, 40, 40, 7])
    batched = solver(f, z0, max_iters=caps, tol=1e-6)
    assert len(set(batched.iterations.tolist())) >= 3  # the samples really stop at different times
    for i in range(5):
        alone = solver(lambda z, rows: f(z, rows + i), z0[i : i + 1], max_iters=int(caps[i]), tol=1e-6)
        assert alone.iterations.item() == batched.iterations[i].item()
        torch.testing.assert_close(alone.z[0], batched.z[i], atol=0, rtol=0)
        torch.testing.assert_close(alone.residual[0], batched.residual[i], atol=0, rtol=0)


def test_residual_modes_by_hand():
    fz, z = torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    torch.testing.assert_close(residual(fz, z, "abs"), torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(residual(fz, z, "rel"), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="stop_mode"):
        residual(fz, z, "max")


# Anderson's regularisation lam is absolute, so it is made negligible for scale invariance to hold
@pytest.mark.parametrize("solver", [functools.partial(anderson, lam=1e-14), fixed_point_iteration])
def test_relative_stopping_ignores_scale_and_absolute_stopping_does_not(solver):
    f, _ = linear_contraction(seed=4, batch=2, spectrum=(0.0, 0.8))
    z0 = torch.zeros(2, DIM, dtype=torch.float64)
    scaled = lambda z, rows: 1000 * f(z / 1000, rows)  # the same map in units 1000 times smaller

    def iterations(g, mode):
        return solver(g, z0, max_iters=500, tol=1e-4, stop_mode=mode).iterations

    assert torch.equal(iterations(f, "rel"), iterations(scaled, "rel"))
    assert (iterations(scaled, "abs") > iterations(f, "abs")).all()
    result = solver(f, z0, max_iters=500, tol=1e-4, stop_mode="abs")
    assert (result.residual < 1e-4).all()


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="max_iters"):
        anderson(lambda z, rows: z, torch.zeros(2, 3), max_iters=torch.tensor([1, 0]), tol=0.0)
