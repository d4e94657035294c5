"""Per-process slices of the global batch, without starting processes.

The contract that makes N processes equal one: for every epoch, the slices that processes
``0..N-1`` draw, concatenated in rank order, are exactly the single-process batch, augmentation
included.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from guided_dml.errors import DataError
from guided_dml.training import ArrayBatches, random_crop_flip
from guided_dml.training.distributed import gather_rows, launch_command, split_bounds


@pytest.mark.parametrize(("n", "parts"), [(32, 2), (33, 2), (7, 3), (2, 4), (0, 3)])
def test_split_bounds_cover_the_rows_in_order(n, parts):
    bounds = [split_bounds(n, parts, i) for i in range(parts)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [len(t) for t in torch.tensor_split(torch.arange(n), parts)]


def _source(part, augment=None, batch=12, drop_last=True):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(50)
    return ArrayBatches(images, labels, batch, augment=augment, part=part, drop_last=drop_last)


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("augment", [None, random_crop_flip])
@pytest.mark.parametrize("drop_last", [True, False])
def test_slices_concatenate_to_the_single_process_batches(world, augment, drop_last):
    def epoch(part):
        return list(_source(part, augment, drop_last=drop_last)(torch.Generator().manual_seed(7)))

    whole = epoch((0, 1))
    parts = [epoch((r, world)) for r in range(world)]
    assert all(len(p) == len(whole) for p in parts)
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([p[i][0] for p in parts]), x)
        assert torch.equal(torch.cat([p[i][1] for p in parts]), y)


def test_a_global_batch_smaller_than_the_processes_is_refused():
    with pytest.raises(DataError, match="global batch"):
        _source((0, 4), batch=3)


def test_gather_is_the_identity_in_one_process():
    x = torch.randn(4, 2, requires_grad=True)
    y = torch.arange(4)
    gx, gy = gather_rows(x, y)
    assert gx is x and gy is y


def test_launch_command_runs_torchrun_standalone_without_the_nproc_flag():
    cmd = launch_command(3, ["train", "--nproc", "3", "--epochs", "2", "--nproc=3", "--seed", "1"])
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3", "-m"]
    assert cmd[6:] == ["guided_dml.cli", "train", "--epochs", "2", "--seed", "1"]
