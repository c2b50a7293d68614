import numpy as np
import pytest
import torch

from deepsad_core.exceptions import TrainingCancelled
from deepsad_core.model.networks import resolve_network
from deepsad_core.model.training import LOSS_EPS, Progress, Schedule, deepsad_loss, init_center, train_deepsad


def test_loss_on_hand_made_distances():
    dist = torch.tensor([4.0, 2.0, 0.5, 3.0])
    semi = torch.tensor([0, 1, -1, 0])
    eta = 2.0
    per_sample = [4.0, eta * (2.0 + LOSS_EPS), eta / (0.5 + LOSS_EPS), 3.0]
    assert deepsad_loss(dist, semi, eta).item() == pytest.approx(sum(per_sample) / 4, rel=1e-6)


def test_loss_without_labels_is_deep_svdds_mean_distance():
    dist = torch.rand(16)
    assert deepsad_loss(dist, torch.zeros(16, dtype=torch.long), 1.0).item() == pytest.approx(dist.mean().item())


def test_loss_pushes_labeled_anomalies_away():
    dist = torch.tensor([1.0], requires_grad=True)
    deepsad_loss(dist, torch.tensor([-1]), 1.0).backward()
    assert dist.grad.item() < 0  # lower loss at larger distance


class _Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = torch.tensor(value)

    def forward(self, x):
        return self.value.expand(len(x), -1)


def test_center_small_components_are_pushed_to_plus_minus_eps():
    net = _Constant([0.05, -0.05, 0.0, 0.3, -2.0])
    c = init_center(net, torch.zeros(10, 3), batch_size=4)
    assert c.tolist() == pytest.approx([0.1, -0.1, 0.1, 0.3, -2.0])


def test_center_is_the_mean_of_one_forward_pass_in_eval_mode():
    spec = resolve_network("mlp", (6,))
    net = spec.build_encoder()
    X = torch.rand(50, 6)
    net.train()
    c = init_center(net, X, batch_size=7)
    net.eval()
    with torch.no_grad():
        expected = net(X).mean(0)
    expected = torch.where(expected.abs() < 0.1, torch.where(expected < 0, -0.1, 0.1), expected)
    assert torch.allclose(c, expected, atol=1e-6)


def _train(callback, epochs=3):
    torch.manual_seed(0)
    net = resolve_network("mlp", (6,)).build_encoder()
    X = torch.rand(100, 6)
    return train_deepsad(
        net,
        X,
        torch.zeros(100, dtype=torch.long),
        torch.full((4,), 0.1),
        Schedule(epochs, 1e-3, 0.0, (2,), 32),
        eta=1.0,
        generator=torch.Generator().manual_seed(0),
        callback=callback,
    )


def test_callback_sees_every_epoch_with_phase_and_eta():
    seen: list[Progress] = []
    losses = _train(seen.append)
    assert [p.epoch for p in seen] == [1, 2, 3]
    assert {p.phase for p in seen} == {"train"}
    assert [p.loss for p in seen] == losses
    assert seen[0].seconds_left > 0 and seen[-1].seconds_left == 0  # two epochs were left after the first


def test_callback_returning_true_cancels():
    with pytest.raises(TrainingCancelled, match="epoch 2 of 5"):
        _train(lambda p: p.epoch == 2, epochs=5)


def test_loss_decreases_on_unlabeled_data():
    losses = _train(None, epochs=10)
    assert np.mean(losses[-3:]) < losses[0]


@pytest.fixture
def one_thread():
    """One intra-op thread, as the engine trains the small MLPs below; sums split over threads round
    differently, so bit-for-bit comparisons need the same count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("labeled", [True, False], ids=["labels", "no-labels"])
def test_training_loop_matches_the_textbook_torch_optim_loop_bit_for_bit(labeled, one_thread):
    """The engine's Adam (torch's update without Optimizer.step's wrappers), its milestone schedule and
    its label-free shortcut give the same weights as torch.optim.Adam + MultiStepLR + zero_grad
    with the paper's loss."""
    torch.manual_seed(0)
    spec = resolve_network("mlp", (6,))
    ours, textbook = spec.build_encoder(), spec.build_encoder()
    textbook.load_state_dict(ours.state_dict())
    X = torch.rand(100, 6)
    semi = torch.tensor([0.0] * 80 + [1.0] * 10 + [-1.0] * 10) if labeled else torch.zeros(100)
    c = torch.full((4,), 0.1)
    schedule = Schedule(epochs=4, lr=1e-3, weight_decay=0.5e-3, milestones=(2, 3), batch_size=32)
    train_deepsad(ours, X, semi, c, schedule, eta=2.0, generator=torch.Generator().manual_seed(0))

    optimizer = torch.optim.Adam(textbook.parameters(), lr=1e-3, weight_decay=0.5e-3, fused=True)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 3], gamma=0.1)
    generator = torch.Generator().manual_seed(0)
    textbook.train()
    for _ in range(4):
        order = torch.randperm(100, generator=generator)
        for b in range(100 // 32):
            batch = order[b * 32 : (b + 1) * 32]
            loss = deepsad_loss(((textbook(X[batch]) - c) ** 2).sum(dim=1), semi[batch], 2.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    for (name, a), b in zip(ours.state_dict().items(), textbook.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _threads_seen_in_training(spec, X: torch.Tensor) -> set[int]:
    seen = set()

    def callback(progress):
        seen.add(torch.get_num_threads())

    train_deepsad(
        spec.build_encoder(), X, torch.zeros(len(X)), torch.full((spec.rep_dim,), 0.1), Schedule(2, 1e-4, 0.0, (), 8),
        eta=1.0, generator=torch.Generator(), callback=callback,
    )  # fmt: skip
    return seen


def test_small_mlps_train_on_one_thread_and_give_the_callers_setting_back():
    threads = torch.get_num_threads()
    assert _threads_seen_in_training(resolve_network("mlp", (21,)), torch.rand(32, 21)) == {1}
    assert torch.get_num_threads() == threads
    # a large table's MLP and any conv net keep every thread: their ops are big enough to split
    assert _threads_seen_in_training(resolve_network("mlp", (2000,)), torch.rand(32, 2000)) == {threads}
    assert _threads_seen_in_training(resolve_network("mnist_lenet", (1, 28, 28)), torch.rand(16, 1, 28, 28)) == {
        threads
    }
