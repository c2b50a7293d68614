"""Training with torchrun (DDP): each rank's share, the all-reduced centre, one process's steps, --nproc."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ddp_ranks import data
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from deepsad_core import DeepSAD, load_detector
from deepsad_core.model import ddp
from deepsad_core.model.networks import resolve_network
from deepsad_core.model.training import init_center

pytestmark = pytest.mark.slow  # torchrun: several processes, each importing torch


def test_each_rank_takes_every_nth_row_and_together_they_cover_every_row(monkeypatch):
    shares = []
    for rank in range(3):
        monkeypatch.setattr(ddp, "rank_and_size", lambda rank=rank: (rank, 3))
        shares.append(ddp.split(11))
    assert [s.tolist() for s in shares] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    monkeypatch.undo()
    np.testing.assert_array_equal(ddp.split(11), np.arange(11))  # one process: all of them
    assert not ddp.active() and ddp.is_main()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    script = Path(__file__).parent / "ddp_ranks.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    subprocess.run([*command, str(out)], check=True, capture_output=True, timeout=300)
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def test_two_ranks_compute_the_centre_over_every_row(two_ranks):
    X, _, _ = data()
    torch.manual_seed(0)
    net = resolve_network("mlp", (6,)).build_encoder()
    alone = init_center(net, torch.as_tensor(X), 256).numpy()
    assert [int(r["size"]) for r in two_ranks] == [2, 2] and [int(r["share"]) for r in two_ranks] == [200, 200]
    for rank in two_ranks:
        np.testing.assert_allclose(rank["center"], alone, rtol=1e-5, atol=1e-6)


def test_two_ranks_train_one_network_as_well_as_one_process(two_ranks):
    np.testing.assert_array_equal(two_ranks[0]["weights"], two_ranks[1]["weights"])  # gradients averaged
    np.testing.assert_array_equal(two_ranks[0]["scores"], two_ranks[1]["scores"])  # and BatchNorm's statistics
    X, truth, semi = data()
    single = DeepSAD(epochs=3, ae_epochs=3, lr=1e-3, ae_lr=1e-3, batch_size=32, seed=0).fit(X, semi)
    # the same batches as one process, split in two: only BatchNorm (each half normalised alone) differs
    assert not np.array_equal(two_ranks[0]["scores"], single.decision_scores_)
    assert spearmanr(two_ranks[0]["scores"], single.decision_scores_).statistic > 0.9
    auc_alone, auc_ranks = roc_auc_score(truth, single.decision_scores_), roc_auc_score(truth, two_ranks[0]["scores"])
    assert abs(auc_ranks - auc_alone) < 0.01


def test_deepsad_train_with_two_processes_writes_one_bundle_like_one_process(tmp_path):
    from deepsad_core.data import load_dataset
    from deepsad_core.loop.settings import RoundConfig

    X, truth, _ = data()
    table = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)]).assign(truth=truth)
    table.to_csv(tmp_path / "t.csv", index=False)
    run = subprocess.run(
        [sys.executable, "-m", "deepsad_core", "train", str(tmp_path / "t.csv"), "--epochs", "5", "--ae-epochs", "5",
         "--out", str(tmp_path / "b.zip"), "--nproc", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("wrote ") == 1  # rank 0 alone writes
    bundle = load_detector(tmp_path / "b.zip")
    assert bundle.info()["processes"] == 2 and set(bundle.info()["training_seconds"]) == {"pretrain", "train"}
    # what `deepsad train` trains in one process: the same settings, in this one
    config = RoundConfig(first_epochs=5, first_ae_epochs=5, max_train_samples=None)
    alone = config.estimator().fit(load_dataset(tmp_path / "t.csv").X)
    aucs = [roc_auc_score(truth, scores) for scores in (alone.decision_scores_, bundle.decision_function(table))]
    assert aucs[1] > 0.95 and abs(aucs[1] - aucs[0]) < 0.02


def test_nproc_must_be_a_positive_count(tmp_path):
    from deepsad_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "x.csv", "--out", str(tmp_path / "b.zip"), "--nproc", "0"])
    assert exit_info.value.code == 2
