"""Exécute les notebooks sans interface et résume durée, mémoire et métriques.

Usage ::

    python -m utils.run_notebooks                  # tous les notebooks, dans l'ordre
    python -m utils.run_notebooks 01               # ceux dont le nom commence par 01
    python -m utils.run_notebooks --profile smoke  # impose un profil
    python -m utils.run_notebooks 01 --refresh     # met à jour les sorties vérifiées par nbval

Les copies exécutées vont dans ``outputs/executed/`` et leur export HTML dans
``outputs/html/``. La mémoire maximale est la plus grande somme des mémoires
résidentes (RSS) du noyau et de ses sous-processus, relevée toutes les 0,2 s :
un pic plus bref peut échapper à la mesure.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

from .paths import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
CELL_TIMEOUT_S = 900


class MemoryMonitor(threading.Thread):
    """Poll the summed RSS of this process's children and keep the maximum."""

    def __init__(self, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop_event.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop_event.wait(self.interval_s)

    def stop(self) -> int:
        """Stop polling and return the peak in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak_bytes


def find_notebooks(selectors: list[str]) -> list[Path]:
    """Return the notebooks whose name starts with a selector (all if none)."""
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not selectors:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.stem.startswith(s) for s in selectors)]
    if not chosen:
        names = ", ".join(nb.stem for nb in notebooks)
        raise SystemExit(f"Aucun notebook ne correspond à {selectors}. Notebooks : {names}")
    return chosen


def strip_for_commit(nb) -> None:
    """Keep only the text outputs of cells marked for nbval, without stderr or widget state.

    Checked cells keep an execution count, because nbval treats a cell with
    outputs but no count as never run and reports it as a failure.
    """
    # ipywidgets stores the state of every tqdm bar here: thousands of lines per notebook.
    nb.metadata.pop("widgets", None)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        if CHECK_MARK not in cell.source:
            cell.outputs = []
            continue
        count += 1
        cell.execution_count = count
        kept_outputs = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.get("name") == "stdout":
                kept_outputs.append(output)
            elif output.output_type == "execute_result":
                output.data = {k: v for k, v in output.data.items() if k == "text/plain"}
                output.execution_count = count
                kept_outputs.append(output)
        cell.outputs = kept_outputs


def summarise_metrics(metrics: dict | None, limit: int = 4) -> str:
    """Return the first few scalar metrics as ``key=value`` text."""
    if not metrics:
        return "—"
    items = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        items.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        if len(items) == limit:
            break
    return ", ".join(items) or "—"


def fresh_metrics(metrics_file: Path, since: float) -> dict | None:
    """Return the metrics in ``metrics_file`` if it was written at ``since`` (epoch seconds) or later.

    A notebook that fails before its check cell leaves the file of an earlier
    run behind, so the summary must not show those old figures as this run's.
    """
    if not metrics_file.is_file() or metrics_file.stat().st_mtime < since:
        return None
    return json.loads(metrics_file.read_text())

# For the results board: the key figures of each notebook (label, path of keys in
# its metrics.json) and the published figure the notebook compares them to.
KEY_RESULTS = {
    "01_modalites_et_bruit": (
        [("UH de l'air", ("hu_air",)), ("SNR du speckle", ("speckle_snr",))],
        "air −1000 UH ; SNR d'amplitude du speckle 1,913 (théorie)",
    ),
    "02_segmentation_busi": (
        [("Dice U-Net", ("models", "U-Net", "dice")), ("Dice Attention U-Net", ("models", "Attention U-Net", "dice")),
         ("Dice YOLO", ("models", "YOLO", "dice"))],
        "U-Net et Attention U-Net ≈ 0,77 de Dice (BUSI complet, 256²)",
    ),
    "03_detection_bccd": (
        [("mAP50 YOLO", ("yolo_map50",)), ("mAP50 U-Net", ("unet_map50",))],
        "YOLOv8n ≈ 0,89 de mAP50 sur BCCD",
    ),
    "04_peu_d_etiquettes_moco": (
        [("AUC ImageNet (100 %)", ("finetune_auc", "ImageNet@1.0")), ("AUC MoCo (100 %)", ("finetune_auc", "MoCo@1.0"))],
        "MoCo-CXR, épanchement : ≈ 0,94 en fine-tuning (CheXpert, 320 px)",
    ),
    "05_incertitude_segmentation": (
        [("Dice MC dropout", ("dice_lesion", "MC dropout")), ("renvoi 20 % : MC", ("referral_dice_at_20_percent", "MC dropout, entropie")),
         ("renvoi 20 % : hasard", ("referral_dice_at_20_percent", "hasard (moyenne)"))],
        "MC dropout p = 0,2, 5 à 10 passages (Bayesian QuickNAT)",
    ),
    "06_calibration_et_prediction_conforme": (
        [("exactitude", ("test_accuracy",)), ("couverture α = 0,1", ("conformal_test", "LAC_0.1", "couverture"))],
        "couverture conforme ≥ 1 − α = 0,9",
    ),
    "07_robustesse_decalage": (
        [("AUC source", ("source_auc",)), ("baisse d'AUC, dégradations sévères", ("severe_mean_auc_drop",))],
        "CheXphoto : baisse d'AUC nette sur les photos de radiographies",
    ),
    "09_detection_anomalies": (
        [("AUROC AE, anomalies dessinées", ("ae_drawn_auroc",)), ("AUROC pixel AE", ("ae_pixel_auroc",)),
         ("AUROC supervisé vues − dessinées", ("supervised_seen_minus_drawn",))],
        "Baur et al. 2021 : auto-encodeurs utiles mais limités en IRM cérébrale ; AnoGAN (Schlegl et al. 2017)",
    ),
    "08_interpretabilite": (
        [("exactitude échographies", ("busi_accuracy",)), ("Grad-CAM dans la lésion / surface", ("lesion_mass_ratio", "Grad-CAM")),
         ("AUC radiographies, bord seul", ("chest_masking_auc", "centre masqué (bord seul)"))],
        "Grad-CAM passe le test de randomisation du modèle (Adebayo et al. 2018)",
    ),
    "10_apprentissage_federe": (
        [("AUC FedAvg", ("fedavg_auc",)), ("AUC centralisé", ("central_auc",)),
         ("AUC hôpital seul (moyenne)", ("single_site_mean_auc",))],
        "fédéré ≈ 99 % du Dice centralisé (Sheller et al. 2020, BraTS, 10 sites)",
    ),
    "11_equite_et_biais": (
        [("AUC anomalie", ("overall_auc", "AUC")), ("FNR F − M", ("sex_fnr_gap_before",)),
         ("FNR F − M, seuil par groupe", ("sex_fnr_gap_after_cross_fitted",))],
        "sous-diagnostic plus fréquent chez les femmes (Seyyed-Kalantari et al. 2021)",
    ),
}


def key_results(notebook: str, metrics: dict | None) -> str:
    """Return the notebook's key figures as ``libellé : valeur`` text (decimal comma), ``—`` when missing."""
    if not metrics:
        return "—"
    items = []
    for label, keys in KEY_RESULTS.get(notebook, ([], ""))[0]:
        value = metrics
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            items.append(f"{label} : {format(value, '.4g').replace('.', ',')}")
    return " ; ".join(items) or summarise_metrics(metrics)


SOURCE_KEYS = ("data_source", "data", "source", "busi_source", "chest_source")


def data_sources(metrics: dict | None) -> str:
    """Return the datasets a run used, as its metrics name them (``synthetic`` for the embedded default)."""
    if not metrics:
        return "—"
    values = [metrics[key] for key in SOURCE_KEYS if isinstance(metrics.get(key), str)]
    return ", ".join(dict.fromkeys(values)) or "—"


def write_results_board(rows: list[dict], profile_name: str, folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``outputs/resultats.md`` and ``outputs/resultats.png`` for ``rows``; return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = folder or PROJECT_ROOT / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Tableau de bord des résultats (profil `{profile_name}`)",
        "",
        f"Écrit par `python -m utils.run_notebooks` le {time.strftime('%Y-%m-%d %H:%M')}. "
        "Durée et mémoire maximale mesurées sur cette machine ; les chiffres clés viennent de "
        "`outputs/<notebook>/metrics.json` écrit par ce passage. « — » : pas de valeur, parce que le notebook "
        "n'a pas de cellule de vérification ou qu'il a échoué avant elle. La colonne « données » dit sur quel jeu "
        "le notebook a tourné ; `synthetic` désigne les images de remplacement, quand le jeu réel manque.",
        "",
        "| notebook | statut | durée (s) | mémoire max (Mio) | données | chiffres clés | chiffre publié de comparaison |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        published = KEY_RESULTS.get(row["notebook"], ([], "—"))[1] or "—"
        lines.append(
            f"| `{row['notebook']}` | {row['status']} | {row['wall_s']:.0f} | {row['peak_mib']:.0f} | "
            f"{row.get('data', '—')} | {row['key_results']} | {published} |"
        )
    markdown = folder / "resultats.md"
    markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")

    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.5), sharey=True)
    names = [row["notebook"] for row in rows]
    colours = ["tab:green" if row["status"] == "ok" else "tab:red" for row in rows]
    axes[0].barh(names, [row["wall_s"] for row in rows], color=colours)
    axes[0].set_xlabel("durée (s)")
    axes[0].invert_yaxis()
    axes[1].barh(names, [row["peak_mib"] for row in rows], color=colours)
    axes[1].set_xlabel("mémoire max (Mio)")
    fig.suptitle(f"Notebooks, profil {profile_name} (vert : réussi, rouge : échec)")
    fig.tight_layout()
    figure = folder / "resultats.png"
    fig.savefig(figure, dpi=100)
    plt.close(fig)
    return markdown, figure


def run_notebook(path: Path, refresh: bool = False) -> dict:
    """Execute one notebook; write its executed copy and HTML; return a summary row."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    from .paths import output_dir

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    monitor = MemoryMonitor()
    monitor.start()
    started_at = time.time()
    start = time.perf_counter()
    status, error_text = "ok", ""
    executed_dir = PROJECT_ROOT / "outputs" / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    # The kernel process logs to its own stderr (start-up warnings, crashes);
    # that goes to a log file so the summary stays readable. Cell outputs,
    # stderr included, still land in the executed notebook.
    kernel_log = open(executed_dir / f"{path.stem}.kernel.log", "w")
    try:
        client.execute(stderr=kernel_log)
    except CellExecutionError as error:
        status = "échec"
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
        error_text = lines[-1][:300] if lines else type(error).__name__
    except Exception as error:  # timeouts and dead kernels
        status = "échec"
        error_text = f"{type(error).__name__}: {error}"[:300]
    finally:
        kernel_log.close()
    wall_s = time.perf_counter() - start
    peak_bytes = monitor.stop()

    html_dir = PROJECT_ROOT / "outputs" / "html"
    html_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed_dir / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (html_dir / f"{path.stem}.html").write_text(html, encoding="utf-8")
    if refresh and status == "ok":
        strip_for_commit(nb)
        nbformat.write(nb, path)

    metrics = fresh_metrics(output_dir(path.stem) / "metrics.json", started_at)
    return {
        "notebook": path.stem,
        "status": status,
        "wall_s": wall_s,
        "peak_mib": peak_bytes / 2**20,
        "metrics": summarise_metrics(metrics),
        "key_results": key_results(path.stem, metrics),
        "data": data_sources(metrics),
        "error": error_text,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected notebooks and print the summary table."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.run_notebooks", description="Exécute les notebooks du cours sans interface."
    )
    parser.add_argument("notebooks", nargs="*", help="préfixes de noms, par exemple 00 01")
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), help="impose MEDIMG_PROFILE")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="réécrit les notebooks avec les seules sorties vérifiées par nbval",
    )
    arguments = parser.parse_args(argv)
    if arguments.profile:
        os.environ["MEDIMG_PROFILE"] = arguments.profile

    from .profile import get_profile

    try:
        profile = get_profile()
    except ValueError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    print(profile.describe())
    rows = []
    for path in find_notebooks(arguments.notebooks):
        print(f"→ {path.name} …", flush=True)
        row = run_notebook(path, refresh=arguments.refresh)
        print(f"  {row['status']} en {row['wall_s']:.0f} s, {row['peak_mib']:.0f} Mio au maximum", flush=True)
        if row["error"]:
            print(f"  erreur : {row['error']}", flush=True)
        rows.append(row)

    print()
    print(f"{'notebook':<38} {'profil':<7} {'statut':<7} {'durée':>8} {'mém. max':>9}  métriques")
    for row in rows:
        print(
            f"{row['notebook']:<38} {profile.name:<7} {row['status']:<7} "
            f"{row['wall_s']:>7.0f}s {row['peak_mib']:>6.0f} Mio  {row['metrics']}"
        )
    print("Copies exécutées : outputs/executed/ ; pages HTML : outputs/html/")
    if rows:
        markdown, figure = write_results_board(rows, profile.name)
        print(f"Tableau de bord : {markdown.relative_to(PROJECT_ROOT)} et {figure.relative_to(PROJECT_ROOT)}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
