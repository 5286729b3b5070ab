import json

import numpy as np

from utils import cache, paths, reporting


def test_metrics_json_converts_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    path = reporting.save_metrics("99_test", {"dice": np.float32(0.5), "n": np.int64(3), "bad": float("nan"), "v": np.arange(2)})
    assert path == tmp_path / "outputs" / "99_test" / "metrics.json"
    assert json.loads(path.read_text()) == {"dice": 0.5, "n": 3, "bad": None, "v": [0, 1]}
    assert reporting.load_metrics("99_test")["n"] == 3


def test_cache_path_depends_on_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    first = cache.cache_path("unet", profile="quick", data="busi", size=128)
    same = cache.cache_path("unet", data="busi", size=128, profile="quick")
    other = cache.cache_path("unet", profile="smoke", data="busi", size=128)
    assert first == same != other
    assert first.parent == tmp_path / "outputs" / "cache"
    assert json.loads(first.with_suffix(".json").read_text())["size"] == 128
