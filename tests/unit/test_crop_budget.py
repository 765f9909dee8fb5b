"""Working sizes per family, the crops' memory, and how many crops go into one ControlNet forward
(issue 11 items 7, 8, 18)."""
import pytest

from realisid_core.branches import budget as cb
from realisid_core.branches.budget import (activation_bytes_per_crop, crops_memory_bytes, crops_per_forward,
                                       scaled_working_size, working_size_cost, working_size_range)

GiB = 2 ** 30


def test_working_sizes_follow_the_families_training_sizes():
    sd15, sdxl = working_size_range("SD1.5"), working_size_range("SDXL")
    assert (sd15.low, sd15.default, sd15.high) == (32, 64, 96)
    assert (sdxl.low, sdxl.default, sdxl.high) == (64, 128, 192)
    assert 64 in sd15 and 72 in sd15 and 100 not in sd15 and 128 not in sd15 and 24 not in sd15
    assert sd15.sizes[:3] == [32, 40, 48] and sdxl.sizes[-1] == 192
    flux = working_size_range("FLUX")  # whole 2×2 patches of FLUX's token grid
    assert (flux.low, flux.default, flux.high, flux.step) == (32, 128, 192, 16) and 136 not in flux
    with pytest.raises(ValueError, match="supports SD1.5, SD2, SDXL, FLUX"):
        working_size_range("SD3")


def test_a_working_size_choice_scales_the_trained_size_within_the_familys_sizes():
    assert scaled_working_size(64, "SD1.5", 1.0) == 64
    assert scaled_working_size(64, "SD1.5", 0.75) == 48 and scaled_working_size(64, "SD1.5", 1.5) == 96
    assert scaled_working_size(96, "SD1.5", 1.5) == 96      # clamped to the family's largest
    assert scaled_working_size(16, "SDXL", 0.75) == 16      # a branch trained below the range keeps its size
    assert scaled_working_size(128, "SDXL", 1.25) == 160


def test_larger_sizes_cost_more():
    assert working_size_cost("SD1.5", 64).time == pytest.approx(1.0)
    costs = [working_size_cost("SDXL", s) for s in working_size_range("SDXL").sizes]
    assert all(a.time < b.time and a.memory < b.memory for a, b in zip(costs, costs[1:]))
    assert working_size_cost("SD1.5", 96).memory == pytest.approx(2.25)          # ∝ size² with fused attention
    assert working_size_cost("SD1.5", 96).memory_without_fused_attention > 4     # ≈ size⁴ without it
    assert working_size_cost("SD1.5", 128).time == pytest.approx(1711.5 / 281.1)


def test_activation_memory_per_crop_by_device_and_dtype():
    gpu = activation_bytes_per_crop("cuda", "SD1.5", 64, 2)
    assert gpu == pytest.approx(60.0 * 2 ** 20, rel=1e-3)
    assert activation_bytes_per_crop("cuda", "SD1.5", 96, 2) == pytest.approx(gpu * 2.25, rel=1e-3)
    assert activation_bytes_per_crop("cuda", "SD1.5", 64, 4) == pytest.approx(2 * gpu, rel=1e-3)
    # without fused attention (CPU, MPS) the whole attention matrix is there: ~9× at 64
    assert activation_bytes_per_crop("cpu", "SD1.5", 64, 4) == pytest.approx(1084 * 2 ** 20, rel=1e-3)
    assert activation_bytes_per_crop("mps", "SD1.5", 64, 2) > 8 * gpu
    assert activation_bytes_per_crop("cuda", "SD1.5", 64, 2, channels=32) == pytest.approx(gpu / 10, rel=1e-3)


def test_gpu_batches_every_crop_when_memory_allows():
    assert crops_per_forward("cuda", 64, "SD1.5", 2, 40 * GiB, 16) == 16
    assert crops_per_forward("cuda", 128, "SDXL", 2, None, 12) == 12
    assert crops_per_forward("cuda", 64, "SD1.5", 2, 40 * GiB, 1) == 1


@pytest.mark.parametrize("device", ["cuda", "cpu", "mps"])
@pytest.mark.parametrize("family,size", [("SD1.5", 64), ("SD1.5", 96), ("SDXL", 128), ("SDXL", 192)])
def test_never_more_memory_than_the_budget(device, family, size):
    crops = 16
    for budget in [int(x * 2 ** 20) for x in (100, 500, 1000, 2000, 5000, 20000, 80000)]:
        k = crops_per_forward(device, size, family, 2, budget, crops)
        assert 1 <= k <= crops
        if k > 1:
            assert crops_memory_bytes(device, family, size, 2, crops, k) <= budget
            assert crops_memory_bytes(device, family, size, 2, crops, k + 1) > budget or k == crops or \
                device == "cpu"


def test_one_crop_per_forward_when_even_one_does_not_fit():
    assert crops_per_forward("cuda", 128, "SDXL", 2, 10 * 2 ** 20, 8) == 1


def test_cpu_takes_the_most_crops_within_5_percent_of_the_fastest(monkeypatch):
    monkeypatch.setattr(cb, "CPU_PER_CROP_TIME", {1: 1.0, 2: 0.75, 4: 0.80, 8: 0.91})
    assert crops_per_forward("cpu", 64, "SD1.5", 4, 100 * GiB, 8) == 2
    monkeypatch.setattr(cb, "CPU_PER_CROP_TIME", {1: 1.0, 2: 0.75, 4: 0.63})
    assert crops_per_forward("cpu", 64, "SD1.5", 4, 100 * GiB, 8) == 4
    assert crops_per_forward("cpu", 64, "SD1.5", 4, 3 * GiB, 8) == 2   # memory first: 4 would not fit
    monkeypatch.setattr(cb, "CPU_PER_CROP_TIME", {1: 1.0, 2: 1.07, 4: 1.21})
    assert crops_per_forward("cpu", 64, "SD1.5", 4, 100 * GiB, 8) == 1
    assert crops_per_forward("cuda", 64, "SD1.5", 4, 100 * GiB, 8) == 8  # the CPU's table is the CPU's only


def test_the_measured_cpu_table_gives_one_face_with_its_cfg_pair():
    assert crops_per_forward("cpu", 64, "SD1.5", 4, None, 8) == 2
    assert crops_per_forward("cpu", 64, "SD1.5", 4, None, 2) == 2
    # never over 5% slower per crop than one face at a time, with or without a CFG pair
    for per_face in (1, 2):
        k = crops_per_forward("cpu", 64, "SD1.5", 4, None, 8)
        assert cb.CPU_PER_CROP_TIME[k] <= 1.05 * cb.CPU_PER_CROP_TIME[per_face]


def test_memory_to_report_counts_every_crops_kept_bytes_and_one_forwards_activations():
    one = crops_memory_bytes("cuda", "SD1.5", 64, 2, 8, 1)
    all8 = crops_memory_bytes("cuda", "SD1.5", 64, 2, 8, 8)
    assert all8 - one == pytest.approx(7 * activation_bytes_per_crop("cuda", "SD1.5", 64, 2), rel=1e-6)
    assert one == activation_bytes_per_crop("cuda", "SD1.5", 64, 2) + 8 * cb.kept_bytes_per_crop("SD1.5", 64, 2)


def test_the_constants_are_what_the_benchmark_counts_today():
    from fixtures.host import HOST_PRESENT, NO_HOST_REASON
    if not HOST_PRESENT:
        pytest.skip(NO_HOST_REASON)
    torch = pytest.importorskip("torch")
    from benchmarks import crops, models
    for key, family in (("sd15", "SD1.5"), ("sdxl", "SDXL")):
        size = working_size_range(family).default
        counted = crops.size_costs(models.FAMILIES[key], [size], torch.float16)["per_size"][size]
        assert counted["fused_bytes"] == pytest.approx(activation_bytes_per_crop("cuda", family, size, 2), rel=0.01)
        assert counted["materialised_bytes"] == pytest.approx(activation_bytes_per_crop("cpu", family, size, 2),
                                                             rel=0.01)
        assert counted["flops"] / 1e9 == pytest.approx(cb.FAMILY_COSTS[family].gflops[size], rel=0.01)
