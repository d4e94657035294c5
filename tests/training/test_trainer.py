"""The generic trainer: determinism, resume equivalence, best-epoch selection, NaN handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guided_dml.data.transforms import RandomResizedCrop
from guided_dml.errors import TrainingError
from guided_dml.training import ArrayBatches, OptimConfig, Trainer, random_crop_flip
from guided_dml.training.batches import crop_resize, random_resized_crop_flip, resized_crop_boxes


class _MSE(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target) ** 2).mean()


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (96, 1, 4, 4), generator=g, dtype=torch.uint8)
    w = torch.randn(16, 2, generator=g)
    y = (x.float().div(255).flatten(1) @ w).contiguous()
    return x, y


def _trainer(tmp_path, epochs: int, lr: float = 0.05, ckpt: bool = True) -> Trainer:
    torch.manual_seed(0)
    x, y = _problem()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    loss = _MSE()
    return Trainer(
        model=model,
        loss_fn=loss,
        step=lambda b: loss(model(b[0]), b[1]),
        train_batches=ArrayBatches(x[:64], y[:64], 16),
        val_batches=ArrayBatches(x[64:], y[64:], 32, shuffle=False, drop_last=False),
        config=OptimConfig(epochs=epochs, lr=lr, clip_value=1.0, plateau_factor=0.5),
        seed=3,
        checkpoint_path=tmp_path / "t.ckpt" if ckpt else None,
        progress=False,
    )


def test_loss_decreases_and_best_epoch_is_restored(tmp_path):
    tr = _trainer(tmp_path, epochs=6)
    res = tr.fit()
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    best = min(range(len(res.history)), key=lambda i: res.history[i]["val_loss"])
    assert res.best_epoch == best
    # The restored model is the best epoch's: its validation loss equals the recorded minimum.
    assert tr.validate() == pytest.approx(res.history[best]["val_loss"], rel=1e-6)


def test_same_seed_same_numbers(tmp_path):
    a = _trainer(tmp_path / "a", epochs=3).fit().history
    b = _trainer(tmp_path / "b", epochs=3).fit().history
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    straight = _trainer(tmp_path / "s", epochs=5).fit()
    # Interrupted after 2 epochs, then resumed from the checkpoint by a fresh trainer.
    _trainer(tmp_path / "r", epochs=2).fit()
    resumed_tr = _trainer(tmp_path / "r", epochs=5)
    resumed_tr.config.epochs = 5
    resumed = resumed_tr.fit(resume=True)
    assert len(resumed.history) == 5
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in straight.history], rel=1e-6
    )


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    tr = _trainer(tmp_path, epochs=2)
    tr.step = lambda b: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(TrainingError, match=r"epoch 1.*--lr"):
        tr.fit()


def test_checkpoint_is_complete_file(tmp_path):
    _trainer(tmp_path, epochs=1).fit()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.ckpt"]  # no temporary leftovers


def test_random_crop_flip_keeps_shape_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    out = random_crop_flip(x, g, pad=4)
    assert out.shape == x.shape
    # pad=0 and no flip would be identity; with pad=0 every output row is a (possibly flipped) input.
    out0 = random_crop_flip(x, torch.Generator().manual_seed(1), pad=0)
    for i in range(8):
        assert torch.equal(out0[i], x[i]) or torch.equal(out0[i], x[i].flip(-1))


def test_random_resized_crop_flip_against_pillow_and_its_sampling():
    import math

    import numpy as np
    from PIL import Image

    # One box against Pillow's bilinear resize of the same box (the per-file transform).
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    left, top, w, h = 5, 8, 20, 30
    pil = np.asarray(Image.fromarray(img).resize((40, 40), Image.Resampling.BILINEAR,
                                                 box=(left, top, left + w, top + h)), dtype=float)
    xt = torch.from_numpy(img).permute(2, 0, 1).float()[None]
    box = [torch.tensor([v]) for v in (left / 40, top / 40, w / 40, h / 40)]
    ours = crop_resize(xt, *box, torch.tensor([False]))[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - pil).max() <= 1.01  # Pillow rounds to 8 bits
    mirrored = crop_resize(xt, *box, torch.tensor([True]))[0].permute(1, 2, 0).numpy()
    assert np.abs(mirrored[:, ::-1] - pil).max() <= 1.01
    # The whole image without a flip is the identity; with one, the mirror image.
    x = torch.rand(16, 3, 24, 40)
    g = torch.Generator().manual_seed(0)
    whole = random_resized_crop_flip(x, g, scale=(1.0, 1.0), ratio=(40 / 24, 40 / 24))
    flips = [torch.allclose(whole[i], x[i].flip(-1), atol=1e-5) for i in range(16)]
    assert all(torch.allclose(whole[i], x[i], atol=1e-5) or flips[i] for i in range(16))
    assert 0 < sum(flips) < 16
    # The sampled boxes: inside the image, areas within the scale range, aspect ratios within
    # the ratio range (in pixels); half of them flipped.
    left_, top_, cw, ch, flip = resized_crop_boxes(4000, 24, 40, torch.Generator().manual_seed(1))
    assert bool(((left_ >= 0) & (left_ + cw <= 1 + 1e-6) & (top_ >= 0) & (top_ + ch <= 1 + 1e-6)).all())
    area = cw * ch
    aspect = (cw * 40) / (ch * 24)
    whole_image = (cw == 1) & (ch == 1)
    assert bool(((area >= 0.08 - 1e-6) | whole_image).all()) and float(area.max()) <= 1 + 1e-6
    assert bool(((aspect > 3 / 4 - 1e-4) & (aspect < 4 / 3 + 1e-4) | whole_image).all())
    assert abs(float(flip.float().mean()) - 0.5) < 0.05
    # Against the per-file RandomResizedCrop (torchvision's sampling) on the same image size:
    # the same distribution of areas and aspect ratios (its rejections included).
    torch.manual_seed(0)
    ref = [RandomResizedCrop(8).params(40, 24) for _ in range(4000)]
    ref_area = torch.tensor([hh * ww / (24 * 40) for _, _, hh, ww in ref])
    ref_log_aspect = torch.tensor([math.log(ww / hh) for _, _, hh, ww in ref])
    assert abs(float(area.mean() - ref_area.mean())) < 0.02
    assert abs(float(torch.log(aspect).mean() - ref_log_aspect.mean())) < 0.02
    assert abs(float(torch.log(aspect).std() - ref_log_aspect.std())) < 0.02
    # The same crops for the same generator, and one process's slice of a global batch.
    a = random_resized_crop_flip(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, random_resized_crop_flip(x, torch.Generator().manual_seed(3)))
    part = random_resized_crop_flip(x[4:9], torch.Generator().manual_seed(3), part=(4, 9, 16))
    assert torch.allclose(part, a[4:9], atol=1e-5)


def test_gaussian_noise_is_sigma_in_the_standardised_space():
    from guided_dml.training.batches import Chain, GaussianNoise

    x = torch.rand(4000, 3) * torch.tensor([1.0, 10.0, 0.0])  # the third feature is constant
    scale = torch.tensor([0.5, 2.0, 0.0])
    g = torch.Generator().manual_seed(0)
    out = GaussianNoise(0.3, scale)(x, g)
    noise = out - x
    assert torch.equal(noise[:, 2], torch.zeros(4000))  # a constant feature gets none
    assert abs(float((noise[:, :2] / scale[:2]).std()) - 0.3) < 0.01
    assert abs(float(noise[:, :2].mean())) < 0.03
    # One process's slice of a global batch gets the rows a single process would.
    whole = GaussianNoise(0.3, scale)(x[:16], torch.Generator().manual_seed(1))
    part = GaussianNoise(0.3, scale)(x[5:9], torch.Generator().manual_seed(1), part=(5, 9, 16))
    assert torch.allclose(part, whole[5:9])
    # Chained after a crop: the crop's draws first, then the noise's.
    images = torch.rand(6, 3, 8, 8)
    chained = Chain((random_crop_flip, GaussianNoise(0.1, torch.ones(3, 1, 1))))
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    expected = GaussianNoise(0.1, torch.ones(3, 1, 1))(random_crop_flip(images, g2), g2)
    assert torch.equal(chained(images, g1), expected)
