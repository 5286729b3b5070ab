"""Choix du matériel de calcul : CUDA, puis Apple MPS, puis CPU."""

import os
import platform

import torch


def get_device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_report(device: torch.device | None = None) -> str:
    """Return a one-line French report on the device, torch and CPU threads."""
    device = device or get_device()
    threads = torch.get_num_threads()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        memory_gib = props.total_memory / 2**30
        name = f"GPU CUDA {props.name} ({memory_gib:.1f} Go)"
    elif device.type == "mps":
        name = f"GPU Apple MPS ({platform.machine()})"
    else:
        name = f"CPU {platform.machine()} ({os.cpu_count()} cœurs logiques)"
    return (
        f"Matériel : {name} | torch {torch.__version__} | "
        f"threads CPU utilisés par torch : {threads}"
    )
