"""The machine a record names: CPUs of one model name can dispatch different kernels, so it says which."""
import torch

from harness.device import device_name


def test_device_name_names_the_cpu_kernels():
    if torch.cuda.is_available():
        assert device_name().startswith("cuda:")
    else:
        name = device_name()
        assert name.startswith("cpu (") and name.endswith(f", {torch.backends.cpu.get_cpu_capability()})")
