"""Simulated hospitals: Dirichlet split, pooled statistics, local training, DP budget, byte counting."""

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from utils.chest import FINDINGS
from utils.federated import (
    NO_FINDING,
    CountingFedProx,
    arrays_nbytes,
    build_client_app,
    dirichlet_sites,
    dp_epsilon,
    make_head,
    make_strategy,
    patient_classes,
    pooled_standardisation,
    predict_head,
    run_federated,
    shared_ray_runtime,
    shutdown_ray,
    train_head,
)


def label_table(rows):
    """Build a label table from ``(patient_id, positive findings)`` rows."""
    records = [{"patient_id": patient, **{f: float(f in positives) for f in FINDINGS}} for patient, positives in rows]
    return pd.DataFrame(records)


def many_patients(per_class=30):
    classes = [*FINDINGS, NO_FINDING]
    return pd.Series(np.repeat(classes, per_class), index=[f"p{i}" for i in range(per_class * len(classes))])


def test_patient_classes_most_frequent_finding():
    table = label_table([
        ("a", {"Edema"}), ("a", {"Edema", "Atelectasis"}),
        ("b", set()), ("b", set()),
        ("c", {"Cardiomegaly", "Atelectasis"}),
    ])
    classes = patient_classes(table)
    assert classes["a"] == "Edema"
    assert classes["b"] == NO_FINDING
    assert classes["c"] == "Atelectasis", "ties go to the finding listed first"


def test_dirichlet_assigns_each_patient_once():
    classes = many_patients()
    sites = dirichlet_sites(classes, 4, alpha=0.5, seed=3, min_patients=5)
    assert list(sites.index) == list(classes.index)
    assert set(sites.unique()) <= {0, 1, 2, 3}
    assert np.bincount(sites.to_numpy(), minlength=4).min() >= 5


def test_dirichlet_same_seed_same_split():
    classes = many_patients()
    first = dirichlet_sites(classes, 4, alpha=0.5, seed=1)
    second = dirichlet_sites(classes, 4, alpha=0.5, seed=1)
    other = dirichlet_sites(classes, 4, alpha=0.5, seed=2)
    assert first.equals(second)
    assert not first.equals(other)


def test_iid_split_balances_every_class():
    classes = many_patients(per_class=21)
    sites = dirichlet_sites(classes, 4, alpha=None)
    counts = pd.crosstab(classes, sites)
    assert (counts.max(axis=1) - counts.min(axis=1)).max() <= 1


def test_small_alpha_skews_labels_more():
    classes = many_patients(per_class=40)

    def largest_share(alpha, seed):
        counts = pd.crosstab(classes, dirichlet_sites(classes, 4, alpha=alpha, seed=seed, min_patients=1))
        return (counts.max(axis=1) / counts.sum(axis=1)).mean()

    skewed = np.mean([largest_share(0.1, seed) for seed in range(5)])
    balanced = np.mean([largest_share(100.0, seed) for seed in range(5)])
    assert skewed > 0.6
    assert balanced < 0.4


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_dirichlet_rejects_invalid_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_sites(many_patients(), 4, alpha=alpha)


def test_dirichlet_rejects_too_few_patients():
    with pytest.raises(ValueError, match="ne suffisent pas"):
        dirichlet_sites(many_patients(per_class=1), 4, alpha=1.0, min_patients=3)


def test_pooled_standardisation_matches_pooled_data():
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc, scale, size=(n, 3)).astype(np.float32) for loc, scale, n in [(0, 1, 10), (5, 2, 30), (-3, 0.5, 7)]]
    mean, std = pooled_standardisation(parts)
    pooled = np.concatenate(parts).astype(np.float64)
    np.testing.assert_allclose(mean, pooled.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, pooled.std(axis=0), rtol=1e-4)


def separable_data(n=120, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = np.stack([(x[:, j] > 0) for j in range(len(FINDINGS))], axis=1).astype(np.float32)
    return x, y


def test_train_head_learns_separable_labels():
    x, y = separable_data()
    head = make_head(x.shape[1])
    summary = train_head(head, x, y, epochs=30, lr=0.05, batch_size=32)
    accuracy = ((predict_head(head, x) > 0.5) == y).mean()
    assert accuracy > 0.9
    assert summary["steps"] == 30 * 4
    assert summary["sample_rate"] == pytest.approx(32 / 120)


def test_proximal_term_limits_drift():
    x, y = separable_data()
    start = make_head(x.shape[1]).state_dict()

    def drift(mu):
        head = make_head(x.shape[1])
        train_head(head, x, y, epochs=10, lr=0.05, batch_size=32, proximal_mu=mu)
        return sum(float(((head.state_dict()[k] - start[k]) ** 2).sum()) for k in start)

    assert drift(10.0) < 0.5 * drift(0.0)


def test_dp_training_returns_plain_head():
    x, y = separable_data()
    head = make_head(x.shape[1])
    before = {k: v.clone() for k, v in head.state_dict().items()}
    summary = train_head(head, x, y, epochs=2, lr=0.05, batch_size=32, noise_multiplier=1.0)
    assert set(head.state_dict()) == {"weight", "bias"}
    assert not hasattr(head.weight, "grad_sample")
    assert summary["steps"] > 0
    assert any(not torch.equal(before[k], head.state_dict()[k]) for k in before)


def test_train_head_rejects_empty_site():
    with pytest.raises(ValueError, match="Aucune image"):
        train_head(make_head(4), np.zeros((0, 4), np.float32), np.zeros((0, 5), np.float32), 1, 0.1, 8)


def test_epsilon_noise_and_steps():
    assert dp_epsilon(2.0, 0.1, 100, 1e-5) < dp_epsilon(1.0, 0.1, 100, 1e-5)
    assert dp_epsilon(1.0, 0.1, 1000, 1e-5) > dp_epsilon(1.0, 0.1, 100, 1e-5)
    assert np.isfinite(dp_epsilon(1.0, 0.3, 120, 1e-4))


class FakeGrid:
    """The only Grid method that FedAvg's node sampling calls."""

    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return self.nodes


@pytest.fixture
def task_identity(monkeypatch):
    """Give Flower the run identity that run_simulation normally sets before messages are built.

    The public properties raise while unset, so the fixture patches their
    private class attributes; monkeypatch restores them after the test.
    """
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_run_id", 7)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)


def test_strategy_counts_bytes_sent_and_received(task_identity):
    strategy = make_strategy(3)
    head = make_head(10)
    messages = strategy.configure_train(1, ArrayRecord(head.state_dict()), ConfigRecord({}), FakeGrid([11, 12, 13]))
    replies = [
        Message(RecordDict({"arrays": ArrayRecord(make_head(10, seed=i).state_dict()), "metrics": MetricRecord({"num-examples": 10})}), reply_to=m)
        for i, m in enumerate(messages)
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    head_bytes = (10 * 5 + 5) * 4
    row = strategy.traffic_table().loc[1]
    assert row["clients"] == 3
    assert row["octets envoyés"] == 3 * head_bytes
    assert row["octets reçus"] == 3 * head_bytes
    assert arrays_nbytes(arrays) == head_bytes


def test_strategy_averages_by_examples(task_identity):
    strategy = make_strategy(2)
    messages = strategy.configure_train(1, ArrayRecord(make_head(3).state_dict()), ConfigRecord({}), FakeGrid([1, 2]))
    states = []
    for value, count, message in zip((1.0, 4.0), (30, 10), messages):
        head = make_head(3)
        torch.nn.init.constant_(head.weight, value)
        states.append(Message(RecordDict({"arrays": ArrayRecord(head.state_dict()), "metrics": MetricRecord({"num-examples": count})}), reply_to=message))
    arrays, _ = strategy.aggregate_train(1, states)
    np.testing.assert_allclose(arrays.to_torch_state_dict()["weight"].numpy(), 1.75)


def test_fedprox_strategy_when_mu_positive():
    assert isinstance(make_strategy(4, proximal_mu=0.1), CountingFedProx)
    assert not isinstance(make_strategy(4), CountingFedProx)


def test_shared_runtime_restores_backend():
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    build, terminate = RayBackend.build, RayBackend.terminate
    with shared_ray_runtime():
        assert RayBackend.build is not build
        assert RayBackend.terminate is not terminate
    assert RayBackend.build is build
    assert RayBackend.terminate is terminate


def test_shared_runtime_restores_backend_on_error():
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    build = RayBackend.build
    with pytest.raises(KeyError), shared_ray_runtime():
        raise KeyError("échec simulé")
    assert RayBackend.build is build


def test_consecutive_simulations_share_ray():
    """Two Flower simulations reuse one Ray instance and give the same weights for the same seed."""
    import ray

    from utils import federated

    rng = np.random.default_rng(0)
    sites = {site: (rng.normal(size=(20, 6)).astype(np.float32), (rng.random((20, len(FINDINGS))) > 0.5).astype(np.float32)) for site in range(2)}
    config = {"local-epochs": 1, "lr": 0.05, "batch-size": 8}

    def simulate():
        return run_federated(build_client_app(sites, 6), make_strategy(2), make_head(6), 2, 2, config, seed=0)

    try:
        first = simulate()
        pool = federated._SHARED_ACTOR_POOL["pool"]
        assert ray.is_initialized(), "Ray must stay up between simulations"
        second = simulate()
        assert federated._SHARED_ACTOR_POOL["pool"] is pool, "the second simulation must reuse the actors"
    finally:
        shutdown_ray()
    assert not ray.is_initialized()
    assert federated._SHARED_ACTOR_POOL["pool"] is None
    assert sorted(first.round_states) == [0, 1, 2]
    for key in ("weight", "bias"):
        torch.testing.assert_close(first.final_state[key], second.final_state[key])
    assert (first.traffic["clients"] == 2).all()
