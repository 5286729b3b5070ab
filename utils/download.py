"""Téléchargement d'un jeu de données Kaggle enregistré, avec des erreurs en français.

Usage : ``python -m utils.download busi``, ou sur Colab
``download_dataset("busi")`` dans une cellule. Les identifiants Kaggle ne sont
lus qu'ici, au moment de l'appel, et jamais écrits dans le dépôt ; sur Colab,
ils viennent des secrets du notebook, que seul le noyau peut lire. Le paquet
``kaggle`` n'est importé qu'après la vérification des identifiants, parce que
son import tente déjà une authentification.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from .datasets import get_dataset
from .paths import data_root


class DownloadError(RuntimeError):
    """A dataset download failed; the message says why and what to do."""


class MissingCredentialsError(DownloadError):
    """Neither kaggle.json nor KAGGLE_USERNAME/KAGGLE_KEY is available."""


class RejectedCredentialsError(DownloadError):
    """Kaggle answered 401: the username or key is wrong or revoked."""


class RulesNotAcceptedError(DownloadError):
    """Kaggle answered 403: the dataset rules were not accepted on its page."""


class NetworkError(DownloadError):
    """Kaggle could not be reached."""


def kaggle_config_file() -> Path:
    """Return the path where the kaggle package looks for kaggle.json."""
    folder = os.environ.get("KAGGLE_CONFIG_DIR")
    if folder:
        return Path(folder).expanduser() / "kaggle.json"
    return Path.home() / ".kaggle" / "kaggle.json"


COLAB_SECRETS = ("KAGGLE_USERNAME", "KAGGLE_KEY")


def load_colab_secrets() -> bool:
    """Copy the Kaggle secrets of a Colab notebook into this process's environment.

    Returns whether both were found. Nothing is written to disk. Outside Colab,
    or when the variables already exist, nothing happens. Colab raises when a
    secret is missing or when the notebook has not been granted access to it;
    both count as missing.
    """
    from .colab import in_colab

    if not in_colab() or all(os.environ.get(name) for name in COLAB_SECRETS):
        return False
    try:
        from google.colab import userdata
    except ImportError:
        return False
    values = {}
    for name in COLAB_SECRETS:
        try:
            values[name] = userdata.get(name)
        except Exception:  # userdata raises SecretNotFoundError or NotebookAccessError
            return False
        if not values[name]:
            return False
    os.environ.update(values)
    return True


def has_kaggle_credentials() -> bool:
    """Whether Kaggle credentials exist in the environment or in kaggle.json."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    kaggle_folder = kaggle_config_file().parent
    for token_name in ("access_token", "access_token.txt"):
        if (kaggle_folder / token_name).is_file():
            return True
    path = kaggle_config_file()
    if not path.is_file():
        return False
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return bool(content.get("username") and content.get("key"))


def _http_status(error: BaseException) -> int | None:
    """Return the HTTP status carried by a kaggle or requests error, if any."""
    for attribute in ("status", "status_code"):
        value = getattr(error, attribute, None)
        if isinstance(value, int):
            return value
    response = getattr(error, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _is_network_error(error: BaseException) -> bool:
    """Whether ``error`` (or its cause) is a failed connection rather than a reply."""
    names = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout",
             "MaxRetryError", "NewConnectionError", "NameResolutionError",
             "ConnectError", "TimeoutException"}
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, (ConnectionError, TimeoutError, OSError)) and not isinstance(
            current, (FileNotFoundError, PermissionError)
        ):
            return True
        if type(current).__name__ in names:
            return True
        current = current.__cause__ or current.__context__
    return False


def translate_kaggle_error(error: BaseException, slug: str) -> DownloadError:
    """Turn an exception raised by the kaggle package into a French DownloadError."""
    status = _http_status(error)
    if isinstance(error, SystemExit):
        # kaggle's authenticate() exits when no credential it found is valid.
        status = 401
    page = f"https://www.kaggle.com/datasets/{slug}"
    if status == 401:
        return RejectedCredentialsError(
            "Kaggle a refusé vos identifiants (HTTP 401). Créez un nouveau jeton "
            "sur https://www.kaggle.com/settings (section API), remplacez "
            f"{kaggle_config_file()} ou les variables KAGGLE_USERNAME et KAGGLE_KEY, "
            "puis relancez."
        )
    if status == 403:
        return RulesNotAcceptedError(
            f"Kaggle refuse l'accès au jeu {slug} (HTTP 403) : acceptez ses règles "
            f"sur {page} (bouton « Download » ou « I understand and accept »), "
            "puis relancez."
        )
    if status == 404:
        return DownloadError(f"Jeu de données introuvable sur Kaggle : {page} (HTTP 404).")
    if _is_network_error(error):
        return NetworkError(
            "Kaggle est injoignable : vérifiez votre connexion réseau (ou le proxy), "
            "ou téléchargez l'archive à la main depuis "
            f"{page} et décompressez-la dans {data_root()}."
        )
    return DownloadError(f"Échec du téléchargement de {slug} : {type(error).__name__}: {error}")


def download_dataset(key: str, root: Path | None = None, api=None) -> Path:
    """Download the Kaggle dataset ``key`` into the data root and return its folder.

    Nothing happens when the dataset is already there. ``api`` replaces the
    authenticated ``kaggle.api`` object, for tests.
    """
    info = get_dataset(key)
    root = data_root() if root is None else Path(root)
    found = info.locate(root)
    if found is not None:
        print(f"{info.title} est déjà présent dans {found} : rien à télécharger.")
        return found
    if info.kaggle_slug is None:
        raise DownloadError(
            f"{info.title} ne se télécharge pas depuis Kaggle. Pour l'obtenir : "
            f"{info.fetch_command(root)}"
        )
    if api is None:
        load_colab_secrets()
    if api is None and not has_kaggle_credentials():
        from .colab import in_colab

        if in_colab():
            raise MissingCredentialsError(
                "Aucun identifiant Kaggle trouvé dans les secrets de Colab. Créez un jeton sur "
                "https://www.kaggle.com/settings (section API), puis, dans Colab, ouvrez le panneau "
                "des secrets (icône de clé), ajoutez KAGGLE_USERNAME et KAGGLE_KEY, autorisez ce "
                "notebook à les lire et relancez. Ne collez jamais la clé dans une cellule."
            )
        raise MissingCredentialsError(
            "Aucun identifiant Kaggle trouvé : ni fichier "
            f"{kaggle_config_file()} ou ~/.kaggle/access_token, ni variables "
            "KAGGLE_USERNAME et KAGGLE_KEY ou KAGGLE_API_TOKEN. Créez un jeton sur "
            "https://www.kaggle.com/settings (section API), placez-le dans ~/.kaggle/ "
            "(droits 600), puis relancez. Ne le copiez jamais dans le dépôt."
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"Impossible de créer le dossier de données {root} ({error}). "
            "Choisissez un dossier accessible en écriture avec MEDIMG_DATA."
        ) from error
    if not os.access(root, os.W_OK):
        raise DownloadError(
            f"Le dossier de données {root} est en lecture seule. "
            "Choisissez un dossier accessible en écriture avec MEDIMG_DATA."
        )

    try:
        if api is None:
            from kaggle import api as kaggle_api

            api = kaggle_api
            api.authenticate()
        print(f"Téléchargement de {info.kaggle_slug} ({info.size}) vers {root}…")
        api.dataset_download_files(info.kaggle_slug, path=str(root), unzip=True, quiet=False)
    except DownloadError:
        raise
    except BaseException as error:  # kaggle raises many unrelated types
        if isinstance(error, KeyboardInterrupt):
            raise
        raise translate_kaggle_error(error, info.kaggle_slug) from error

    found = info.locate(root)
    if found is None:
        raise DownloadError(
            f"L'archive de {info.kaggle_slug} a été décompressée dans {root}, mais la "
            f"disposition attendue ({info.layout}) est introuvable. Vérifiez le contenu "
            "du dossier et déplacez les fichiers si besoin."
        )
    print(f"{info.title} est prêt dans {found}.")
    return found


def main(argv: list[str] | None = None) -> int:
    """Download the datasets named on the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.download", description="Télécharge un jeu de données Kaggle du cours."
    )
    parser.add_argument("datasets", nargs="+", help="clé du registre, par exemple busi")
    arguments = parser.parse_args(argv)
    status = 0
    for key in arguments.datasets:
        try:
            download_dataset(key)
        except (DownloadError, KeyError, NotADirectoryError) as error:
            message = error.args[0] if error.args else str(error)
            print(f"Erreur : {message}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
