import os
import subprocess
import sys

import torch

from utils.device import device_report, get_device


def test_cpu_chosen_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_cuda_preferred_over_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


def test_mps_chosen_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device() == torch.device("mps")


def test_cpu_report_is_one_french_line():
    report = device_report(torch.device("cpu"))
    assert "\n" not in report
    assert report.startswith("Matériel : CPU")
    assert torch.__version__ in report
    assert f"threads CPU utilisés par torch : {torch.get_num_threads()}" in report


def test_mps_fallback_set_before_torch_import():
    code = (
        "import sys, utils, os; "
        "assert 'torch' not in sys.modules, 'utils imported torch'; "
        "print(os.environ['PYTORCH_ENABLE_MPS_FALLBACK'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_ENABLE_MPS_FALLBACK"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_import_utils_skips_kaggle_and_torch():
    code = "import sys, utils, utils.datasets, utils.download; print('kaggle' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
