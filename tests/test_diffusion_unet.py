"""UNet-1D: shapes at the CTG lengths, bad lengths, label embeddings with null entries."""
from __future__ import annotations

import pytest
import torch

from dataloader.errors import UserError
from diffusion.unet1d import UNet1D, timestep_embedding

TINY = dict(base_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1, attention_levels=[], attention_heads=1,
            norm_groups=8)
BASE = dict(base_channels=64, channel_mult=[1, 2, 4, 4], num_res_blocks=2, attention_levels=[3], attention_heads=4,
            norm_groups=32)


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    """Give zero-initialised layers weights, so outputs depend on inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_shapes_at_ctg_lengths():
    torch.manual_seed(0)
    net = UNet1D(2, 2, label_classes=[3, 2, 2, 2], **TINY)
    y = torch.tensor([[0, 1, 0, 1], [2, 0, 1, 0]])
    with torch.no_grad():
        assert net(torch.randn(2, 2, 2048), torch.tensor([0.0, 999.0]), y).shape == (2, 2, 2048)   # 1 Hz CTG
        assert net(torch.randn(1, 2, 1024), torch.tensor([5.5]), y[:1]).shape == (1, 2, 1024)      # 8192 / 8 latent
    base = UNet1D(2, 2, label_classes=[3, 2], dropout=0.1, **BASE)
    with torch.no_grad():
        assert base(torch.randn(1, 2, 1024), torch.tensor([10.0]), base.null_labels(1)).shape == (1, 2, 1024)
    assert 10e6 < sum(p.numel() for p in base.parameters()) < 14e6


def test_bad_length_names_the_lengths_that_work():
    net = UNet1D(2, 2, **BASE)
    assert net.length_multiple == 8
    with pytest.raises(UserError, match="multiple of 8 .e.g. 2040 or 2048"):
        net(torch.randn(1, 2, 2044), torch.zeros(1))
    with pytest.raises(UserError, match="multiple of 4"):
        UNet1D(1, 1, **TINY).check_length(6)


def test_null_labels_and_embedding_tables():
    net = UNet1D(2, 2, label_classes=[3, 2], **TINY)
    assert [t.num_embeddings for t in net.label_tables] == [4, 3]        # one extra null entry per column
    assert net.null_labels(3).tolist() == [[3, 2]] * 3
    _randomise(net)
    x, t = torch.randn(2, 2, 64), torch.tensor([100.0, 100.0])
    with torch.no_grad():
        cond = net(x, t, torch.tensor([[0, 1], [0, 1]]))
        null = net(x, t, net.null_labels(2))
        other = net(x, t, torch.tensor([[2, 1], [2, 1]]))
    assert not torch.allclose(cond, null) and not torch.allclose(cond, other)
    with pytest.raises(IndexError):
        net(x, t, torch.tensor([[4, 0], [0, 0]]))          # past the null entry


def test_concat_embedding_and_unlabelled_network():
    net = UNet1D(1, 1, label_classes=[2, 5], label_embed="concat", **TINY)
    assert net.label_proj is not None and net.label_proj.in_features == 2 * 64
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32), torch.zeros(2), torch.tensor([[0, 4], [2, 5]])).shape == (2, 1, 32)
    bare = UNet1D(1, 1, **TINY)
    with torch.no_grad():
        assert bare(torch.randn(2, 1, 32), torch.zeros(2)).shape == (2, 1, 32)
    assert bare.null_labels(2).shape == (2, 0)


def test_each_sample_is_independent_of_its_batch():
    net = UNet1D(2, 2, label_classes=[3], attention_levels=[2], attention_heads=2,
                 **{k: v for k, v in TINY.items() if k not in ("attention_levels", "attention_heads")})
    _randomise(net)
    x, t, y = torch.randn(4, 2, 64), torch.tensor([1.0, 50.0, 400.0, 999.0]), torch.tensor([[0], [1], [2], [3]])
    with torch.no_grad():
        whole = net(x, t, y)
        parts = torch.cat([net(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=1e-5)


def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0.0, 10.0]), 16)
    assert e.shape == (2, 16)
    assert torch.equal(e[0, :8], torch.ones(8)) and torch.equal(e[0, 8:], torch.zeros(8))
    assert timestep_embedding(torch.tensor([3.0]), 7).shape == (1, 7)
