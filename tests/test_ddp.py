"""Training with torchrun (DDP): shards, the all-reduced centre, gradients averaged, and --nproc end to end."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ddp_ranks import data
from sklearn.metrics import roc_auc_score

from deepsad_core import DeepSAD, ddp, load_detector
from deepsad_core.networks import resolve_network
from deepsad_core.training import init_center


def test_each_rank_gets_an_equal_share_and_together_they_cover_every_row(monkeypatch):
    rows = np.arange(10, 21)  # 11 rows over 3 ranks: padded to 12 from the start
    shards = []
    for rank in range(3):
        monkeypatch.setattr(ddp, "rank_and_size", lambda rank=rank: (rank, 3))
        shards.append(ddp.shard(rows))
    assert [len(s) for s in shards] == [4, 4, 4]  # DDP steps together: the same number of batches
    assert set(np.concatenate(shards).tolist()) == set(rows.tolist())
    monkeypatch.undo()
    np.testing.assert_array_equal(ddp.shard(rows), rows)  # one process: all of them
    assert not ddp.active() and ddp.is_main()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    script = Path(__file__).parent / "ddp_ranks.py"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    subprocess.run([*command, str(out)], check=True, capture_output=True, timeout=300)
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def test_two_ranks_compute_the_centre_over_every_shard(two_ranks):
    X, _, _ = data()
    torch.manual_seed(0)
    net = resolve_network("mlp", (6,)).build_encoder()
    alone = init_center(net, torch.as_tensor(X), 256).numpy()
    assert [int(r["size"]) for r in two_ranks] == [2, 2] and [int(r["shard"]) for r in two_ranks] == [200, 200]
    for rank in two_ranks:
        np.testing.assert_allclose(rank["center"], alone, rtol=1e-5, atol=1e-6)


def test_two_ranks_train_one_network_as_well_as_one_process(two_ranks):
    np.testing.assert_array_equal(two_ranks[0]["weights"], two_ranks[1]["weights"])  # gradients averaged
    np.testing.assert_array_equal(two_ranks[0]["scores"], two_ranks[1]["scores"])  # and BatchNorm's statistics
    X, truth, semi = data()
    single = DeepSAD(epochs=3, ae_epochs=3, lr=1e-3, ae_lr=1e-3, batch_size=32, seed=0).fit(X, semi)
    assert not np.allclose(two_ranks[0]["scores"], single.decision_scores_)  # other batches, other weights
    auc_alone, auc_ranks = roc_auc_score(truth, single.decision_scores_), roc_auc_score(truth, two_ranks[0]["scores"])
    assert auc_ranks > 0.95 and abs(auc_ranks - auc_alone) < 0.02


def test_deepsad_train_with_two_processes_writes_one_bundle_like_one_process(tmp_path):
    from deepsad_core.data import load_dataset
    from deepsad_core.rounds import RoundConfig

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
