"""Apprentissage fédéré simulé : hôpitaux non IID, FedAvg avec Flower, DP-SGD avec Opacus.

Ce module répartit les patients d'un jeu de radiographies entre plusieurs
hôpitaux simulés (partage de Dirichlet par anomalie, ou partage IID), entraîne
une petite tête de classification sur des caractéristiques figées, localement
ou par FedAvg dans le mode simulation de Flower (``flwr.simulation``, Ray en
arrière-plan), et compte les octets réellement échangés à chaque tour.

Flower et Ray lisent leur configuration à l'import : ce module coupe leur
télémétrie (``FLWR_TELEMETRY_ENABLED=0``, ``RAY_USAGE_STATS_ENABLED=0``) avant
de les importer, et règle le journal ``flwr`` sur ERROR pour que les journaux
de chaque tour ne remplissent pas le notebook. Importez-le avant ``flwr``.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray 2.5x avertit à chaque acteur qu'il changera la gestion de CUDA_VISIBLE_DEVICES
# quand num_gpus=0 ; cette variable adopte dès maintenant le futur comportement.
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import contextlib  # noqa: E402
import copy  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
# Ray importe tqdm.auto, qui avertit dans un notebook sans ipywidgets ; les barres restent en texte.
warnings.filterwarnings("ignore", message="IProgress not found")

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg, FedProx  # noqa: E402
from torch import nn  # noqa: E402

from .chest import FINDINGS  # noqa: E402
from .classification import masked_bce  # noqa: E402

logging.getLogger("flwr").setLevel(logging.ERROR)
# Ray signale au démarrage, dans un notebook, l'absence d'ipywidgets pour son affichage riche.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)

NO_FINDING = "aucune"


# ---------------------------------------------------------------------------
# Répartition des patients entre hôpitaux


def patient_classes(table: pd.DataFrame, findings=FINDINGS) -> pd.Series:
    """Return one class per patient: its most frequent positive finding, or ``NO_FINDING``.

    Ties go to the finding listed first in ``findings``. The Dirichlet split
    needs a single class per patient, while radiographs carry several labels.
    """
    labels = table[list(findings)].fillna(0).groupby(table["patient_id"]).sum()
    best = labels.to_numpy().argmax(axis=1)
    has_finding = labels.to_numpy().max(axis=1) > 0
    classes = np.where(has_finding, np.asarray(findings)[best], NO_FINDING)
    return pd.Series(classes, index=labels.index, name="classe")


def dirichlet_sites(
    classes: pd.Series,
    num_sites: int,
    alpha: float | None,
    seed: int = 0,
    min_patients: int = 2,
    max_draws: int = 1000,
) -> pd.Series:
    """Assign every patient of ``classes`` (index: patient id) to one of ``num_sites`` sites.

    For each class, site shares are drawn from a symmetric Dirichlet law of
    parameter ``alpha`` and the class's shuffled patients are cut in those
    proportions (the label-skew split of Hsu et al. 2019). A small ``alpha``
    concentrates each class on a few sites; ``alpha=None`` deals every class
    in turn to each site, an IID split. Draws are repeated until every site
    has at least ``min_patients`` patients; raises ``RuntimeError`` after
    ``max_draws`` failures. Returns the site index of each patient.
    """
    if num_sites < 2:
        raise ValueError(f"Nombre d'hôpitaux invalide : {num_sites} (au moins 2 attendus).")
    if alpha is not None and not alpha > 0:
        raise ValueError(f"Paramètre de Dirichlet invalide : alpha={alpha!r} (réel positif attendu, ou None pour un partage IID).")
    if len(classes) < num_sites * min_patients:
        raise ValueError(f"{len(classes)} patients ne suffisent pas pour {num_sites} hôpitaux d'au moins {min_patients} patients.")
    rng = np.random.default_rng(seed)
    for _ in range(max_draws):
        sites = pd.Series(-1, index=classes.index, name="site")
        offset = 0
        for name in sorted(classes.unique()):
            patients = rng.permutation(classes.index[classes == name].to_numpy())
            if alpha is None:
                sites.loc[patients] = (np.arange(len(patients)) + offset) % num_sites
                offset += len(patients)
                continue
            shares = rng.dirichlet(np.full(num_sites, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * len(patients)).astype(int)
            for site, members in enumerate(np.split(patients, cuts)):
                sites.loc[members] = site
        if np.bincount(sites.to_numpy(), minlength=num_sites).min() >= min_patients:
            return sites
    raise RuntimeError(
        f"Aucun tirage sur {max_draws} ne donne au moins {min_patients} patients à chacun des {num_sites} hôpitaux "
        f"avec alpha={alpha} : augmentez alpha ou réduisez le nombre d'hôpitaux."
    )


def pooled_standardisation(site_features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean and standard deviation of all sites' features from per-site sums only.

    Each site sends its count, its sum and its sum of squares (two vectors of
    the feature size), never a feature vector of a patient. The result equals
    the statistics of the pooled features.
    """
    count = sum(len(features) for features in site_features)
    if count == 0:
        raise ValueError("Aucune caractéristique : impossible de standardiser.")
    total = sum(features.astype(np.float64).sum(axis=0) for features in site_features)
    squares = sum((features.astype(np.float64) ** 2).sum(axis=0) for features in site_features)
    mean = total / count
    variance = np.maximum(squares / count - mean**2, 0.0)
    return mean.astype(np.float32), np.sqrt(variance + 1e-12).astype(np.float32)


# ---------------------------------------------------------------------------
# Tête de classification et entraînement local


def make_head(feature_dim: int, num_outputs: int = len(FINDINGS), seed: int = 0) -> nn.Linear:
    """Return a logistic head (one linear layer) initialised from ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    head = nn.Linear(feature_dim, num_outputs)
    torch.random.set_rng_state(generator_state)
    return head


def train_head(
    head: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    proximal_mu: float = 0.0,
    noise_multiplier: float | None = None,
    max_grad_norm: float = 1.0,
) -> dict:
    """Train ``head`` in place with Adam on ``(features, labels)``; return the loss and step counts.

    ``proximal_mu`` adds the FedProx term ``mu / 2 * ||w - w_start||²``, which
    keeps the weights near those the head had on entry. With
    ``noise_multiplier``, training is DP-SGD through Opacus: Poisson sampling
    of rate ``batch_size / n``, per-example gradients clipped to
    ``max_grad_norm`` and Gaussian noise of standard deviation
    ``noise_multiplier * max_grad_norm``. The returned ``steps`` and
    ``sample_rate`` feed ``dp_epsilon``.
    """
    from torch.utils.data import DataLoader, TensorDataset

    if len(features) == 0:
        raise ValueError("Aucune image d'entraînement sur ce site : impossible d'entraîner la tête.")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    dataset = TensorDataset(torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.float32))
    loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, generator=generator)
    start = [parameter.detach().clone() for parameter in head.parameters()]
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    model = head
    if noise_multiplier is not None:
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant="rdp")
        model, optimizer, loader = engine.make_private(
            module=head,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            noise_generator=generator,
        )
    model.train()
    losses, steps = [], 0
    for _ in range(epochs):
        for x, y in loader:
            if len(x) == 0:
                continue  # un tirage de Poisson peut donner un lot vide
            loss = masked_bce(model(x), y)
            if proximal_mu > 0:
                drift = sum(((parameter - anchor) ** 2).sum() for parameter, anchor in zip(model.parameters(), start))
                loss = loss + proximal_mu / 2 * drift
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            steps += 1
    if noise_multiplier is not None:
        # make_private a attaché des crochets d'Opacus à la tête : on les retire pour rendre un module ordinaire.
        model._close()
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "steps": steps, "sample_rate": min(1.0, batch_size / len(features))}


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Return the ε of ``steps`` DP-SGD steps at ``sample_rate`` and ``noise_multiplier``, for ``delta``.

    Uses Opacus's Rényi accountant (Mironov 2017), the one ``train_head``
    uses, on the composition of all steps.
    """
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta=delta))


@torch.no_grad()
def predict_head(head: nn.Module, features: np.ndarray) -> np.ndarray:
    """Return the sigmoid probabilities of ``head`` on ``features``."""
    head.eval()
    return torch.sigmoid(head(torch.as_tensor(features, dtype=torch.float32))).numpy()


# ---------------------------------------------------------------------------
# Flower : client, serveur et comptage des octets


def arrays_nbytes(arrays: ArrayRecord) -> int:
    """Return the bytes of the parameter arrays in ``arrays`` (sum of ``ndarray.nbytes``)."""
    return int(sum(array.nbytes for array in arrays.to_numpy_ndarrays()))


class TrafficCountingMixin:
    """Record, for each training round, the parameter bytes a strategy sends and receives.

    ``traffic`` gets one row per round: clients reached, bytes sent (the
    global model, once per client message) and bytes received (each client
    reply). Only parameter arrays count, not message headers or
    configuration values, whose size does not grow with the model.
    """

    def configure_train(self, server_round, arrays, config, grid):
        messages = list(super().configure_train(server_round, arrays, config, grid))
        row = self._traffic_row(server_round)
        row["clients"] = len(messages)
        row["octets envoyés"] = len(messages) * arrays_nbytes(arrays)
        return messages

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        row = self._traffic_row(server_round)
        row["octets reçus"] = sum(
            arrays_nbytes(reply.content[self.arrayrecord_key]) for reply in replies if not reply.has_error()
        )
        row["échecs"] = sum(reply.has_error() for reply in replies)
        return super().aggregate_train(server_round, replies)

    def _traffic_row(self, server_round: int) -> dict:
        if not hasattr(self, "traffic"):
            self.traffic = {}
        return self.traffic.setdefault(server_round, {"clients": 0, "octets envoyés": 0, "octets reçus": 0, "échecs": 0})

    def traffic_table(self) -> pd.DataFrame:
        """Return the recorded traffic, one row per round."""
        table = pd.DataFrame.from_dict(getattr(self, "traffic", {}), orient="index").rename_axis("tour")
        return table


class CountingFedAvg(TrafficCountingMixin, FedAvg):
    """Flower's ``FedAvg`` that records the bytes of each round in ``traffic``."""


class CountingFedProx(TrafficCountingMixin, FedProx):
    """Flower's ``FedProx`` that records the bytes of each round in ``traffic``."""


def make_strategy(num_sites: int, proximal_mu: float = 0.0) -> FedAvg:
    """Return a counting FedAvg (or FedProx when ``proximal_mu > 0``) that trains every site each round.

    All sites take part in every round (``min_train_nodes = num_sites``), so
    that a round never starts before every simulated hospital has joined.
    Federated evaluation is off: the notebook evaluates the global model of
    each round itself.
    """
    options = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": num_sites, "min_available_nodes": num_sites}
    if proximal_mu > 0:
        return CountingFedProx(proximal_mu=proximal_mu, **options)
    return CountingFedAvg(**options)


def build_client_app(site_data: dict[int, tuple[np.ndarray, np.ndarray]], feature_dim: int) -> ClientApp:
    """Return a Flower ``ClientApp`` whose node of partition ``k`` trains on ``site_data[k]``.

    The train configuration carries ``local-epochs``, ``lr``, ``batch-size``,
    ``seed`` and, optionally, ``proximal-mu`` (sent by FedProx),
    ``noise-multiplier`` and ``max-grad-norm`` (DP-SGD). The reply contains the
    trained weights and the metrics ``num-examples`` (FedAvg's weight),
    ``train-loss``, ``dp-steps`` and ``sample-rate``.
    """
    app = ClientApp()

    @app.train()
    def train(message: Message, context) -> Message:
        site = int(context.node_config["partition-id"])
        features, labels = site_data[site]
        config = message.content["config"]
        head = make_head(feature_dim)
        head.load_state_dict(message.content["arrays"].to_torch_state_dict())
        noise = float(config.get("noise-multiplier", 0.0))
        summary = train_head(
            head,
            features,
            labels,
            epochs=int(config["local-epochs"]),
            lr=float(config["lr"]),
            batch_size=int(config["batch-size"]),
            seed=int(config["seed"]) + 1000 * int(config["server-round"]) + site,
            proximal_mu=float(config.get("proximal-mu", 0.0)),
            noise_multiplier=noise if noise > 0 else None,
            max_grad_norm=float(config.get("max-grad-norm", 1.0)),
        )
        metrics = MetricRecord(
            {
                "num-examples": len(features),
                "train-loss": summary["loss"],
                "dp-steps": summary["steps"],
                "sample-rate": summary["sample_rate"],
            }
        )
        return Message(RecordDict({"arrays": ArrayRecord(head.state_dict()), "metrics": metrics}), reply_to=message)

    return app


@dataclass
class FederatedRun:
    """Outcome of one simulated federation: global weights after each round and traffic per round."""

    round_states: dict[int, dict] = field(default_factory=dict)
    traffic: pd.DataFrame | None = None
    train_metrics: dict[int, dict] = field(default_factory=dict)

    @property
    def final_state(self) -> dict:
        """Return the global weights after the last round."""
        return self.round_states[max(self.round_states)]


def run_federated(
    client_app: ClientApp,
    strategy: FedAvg,
    initial_head: nn.Module,
    num_rounds: int,
    num_sites: int,
    train_config: dict,
    seed: int = 0,
    cpus: int = 1,
) -> FederatedRun:
    """Run ``num_rounds`` rounds of ``strategy`` on ``num_sites`` simulated nodes with Flower.

    The simulation goes through ``flwr.simulation.run_simulation`` on Ray,
    with ``cpus`` CPUs for Ray and one per client, so that clients train one
    after another on a small machine. The server-side evaluation hook stores
    a copy of the global weights after every round (round 0 is the initial
    head). Python, NumPy and torch are seeded first, since Flower samples
    nodes with ``random``. Ray and its client actors stay up for the next
    run (see ``shared_ray_runtime``); call ``shutdown_ray`` at the end.
    """
    # NOTE: run_simulation est marquée obsolète dans Flower 1.42 au profit de la
    # commande `flwr run`, qui exige un projet Flower et un SuperLink ; c'est
    # encore le seul point d'entrée Python qui accepte des applications en mémoire.
    from flwr.simulation import run_simulation

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    outcome = FederatedRun()

    def keep_state(server_round: int, arrays: ArrayRecord):
        outcome.round_states[server_round] = copy.deepcopy(arrays.to_torch_state_dict())
        return None

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context) -> None:
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_head.state_dict()),
            num_rounds=num_rounds,
            train_config=ConfigRecord({"seed": seed, **train_config}),
            evaluate_fn=keep_state,
        )
        outcome.train_metrics = {round_: dict(record) for round_, record in result.train_metrics_clientapp.items()}

    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False},
    }
    if hasattr(strategy, "traffic"):
        strategy.traffic = {}
    with shared_ray_runtime():
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_sites, backend_config=backend_config)
    if len(outcome.round_states) != num_rounds + 1:
        raise RuntimeError(
            f"La simulation Flower s'est arrêtée après {len(outcome.round_states) - 1} tours sur {num_rounds} : "
            "relancez la cellule ; si l'échec persiste, lisez le journal « flwr » au niveau INFO."
        )
    outcome.traffic = strategy.traffic_table()
    return outcome


# Pool of Ray actors that runs the ClientApps, kept from one simulation to the next.
_SHARED_ACTOR_POOL = {"pool": None}


def _ray_backend_class():
    """Return Flower's ``RayBackend`` class, or None when this Flower version has no such internal class."""
    try:
        from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
    except ImportError:
        return None
    if not all(hasattr(RayBackend, name) for name in ("build", "terminate")):
        return None
    return RayBackend


@contextlib.contextmanager
def shared_ray_runtime():
    """Let consecutive ``run_simulation`` calls share one Ray instance and one pool of client actors.

    Flower's simulation backend starts Ray and new actors for every
    ``run_simulation`` call and shuts Ray down at the end. With Flower 1.42
    and Ray 2.55 on a busy 2-core CPU, that cost 15 to 25 s per call (Ray
    start-up, then a worker process that imports torch). Inside this
    context, ``RayBackend.build`` reuses the actors of the previous
    simulation and ``RayBackend.terminate`` leaves them and Ray running. The actors hold no state between messages (Flower
    sends the ClientApp with each message), so results do not change.
    ``shutdown_ray`` stops everything. If the simulation raises, the pool
    and Ray are stopped so that the next call starts afresh.
    """
    # NOTE: this patches internals of Flower 1.42 (flwr.server.superlink.fleet.vce.backend.raybackend);
    # with a Flower version that lacks them, the simulation runs unpatched, only slower.
    backend_class = _ray_backend_class()
    if backend_class is None:
        yield
        return
    original_build, original_terminate = backend_class.build, backend_class.terminate

    def build(self, app_fn) -> None:
        import ray

        pool = _SHARED_ACTOR_POOL["pool"]
        if pool is None or not ray.is_initialized():
            original_build(self, app_fn)
            _SHARED_ACTOR_POOL["pool"] = self.pool
            return
        self.pool = pool
        self.app_fn = app_fn

    def terminate(self) -> None:
        return None

    backend_class.build, backend_class.terminate = build, terminate
    try:
        yield
    except BaseException:
        shutdown_ray()
        raise
    finally:
        backend_class.build, backend_class.terminate = original_build, original_terminate


def shutdown_ray() -> None:
    """Stop the local Ray instance that Flower started, if any, with its worker processes and shared client actors."""
    import ray

    _SHARED_ACTOR_POOL["pool"] = None
    if ray.is_initialized():
        ray.shutdown()
