"""Display tables: counts as whole numbers, booleans in French, numbers rounded."""

import numpy as np
import pandas as pd

from utils.reporting import tidy_table


def transposed_table():
    rows = {
        "hôpital A": {"AUC": 0.123456, "patients": 28, "au-delà du bruit": True, "groupe": "M"},
        "hôpital B": {"AUC": 0.5, "patients": np.nan, "au-delà du bruit": False, "groupe": "F"},
    }
    return pd.DataFrame(rows).T


def test_transposed_table_is_rounded():
    table = transposed_table()
    assert table["AUC"].dtype == object, "the premise: a transposed table has object columns"
    tidy = tidy_table(table, counts=["patients"])
    assert tidy.loc["hôpital A", "AUC"] == 0.123
    assert tidy["AUC"].dtype == float


def test_counts_are_whole_numbers():
    tidy = tidy_table(transposed_table(), counts=["patients"])
    assert tidy.loc["hôpital A", "patients"] == 28
    assert isinstance(tidy.loc["hôpital A", "patients"], int)
    assert tidy.loc["hôpital B", "patients"] == "—"


def test_booleans_become_oui_non():
    tidy = tidy_table(transposed_table())
    assert tidy["au-delà du bruit"].tolist() == ["oui", "non"]
    assert tidy["groupe"].tolist() == ["M", "F"], "text columns stay as they are"
    grouped = pd.DataFrame({"bascule": [True, False, True], "v": [1.0, 2.0, 3.0]}).groupby("bascule").mean()
    assert tidy_table(grouped).index.tolist() == ["non", "oui"]


def test_input_left_untouched():
    table = transposed_table()
    tidy_table(table, counts=["patients"], digits=1)
    assert table.loc["hôpital A", "AUC"] == 0.123456
    assert table.loc["hôpital A", "au-delà du bruit"] is True


def test_two_level_columns():
    table = pd.DataFrame({("AE", "AUC"): [0.61234], ("effectifs", "positifs"): [12.0]})
    tidy = tidy_table(table, counts=[("effectifs", "positifs")])
    assert tidy[("effectifs", "positifs")].tolist() == [12]
    assert tidy[("AE", "AUC")].tolist() == [0.612]
