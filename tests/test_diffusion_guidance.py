"""Classifier-free guidance: training dropout, the batched guided denoiser, and no dropout at sampling."""
from __future__ import annotations

import torch

from diffusion.guidance import CFGDenoiser
from diffusion.loss import drop_labels

NULL = [3, 2]


class Recorder:
    """A label-dependent fake denoiser that records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, labels):
        self.calls.append((x.shape[0], labels.clone()))
        return x * sigma.view(-1, 1, 1) + labels.float().sum(1).view(-1, 1, 1) * 0.1 + (labels[:, :1] == 3).float().view(-1, 1, 1)


def test_drop_labels_rates_and_null_entries():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(20000, 2, dtype=torch.long)
    out = drop_labels(labels, NULL, p_col=0.2, p_all=0.1, generator=g)
    null = torch.tensor(NULL)
    dropped = out == null
    assert set(out[:, 0].tolist()) <= {0, 3} and set(out[:, 1].tolist()) <= {0, 2}
    # per column: 1 - (1 - 0.2)(1 - 0.1) = 0.28; both: 0.1 + 0.9 * 0.04 = 0.136
    assert abs(dropped[:, 0].float().mean().item() - 0.28) < 0.015
    assert abs(dropped.all(1).float().mean().item() - 0.136) < 0.012
    assert torch.equal(labels, torch.zeros(20000, 2, dtype=torch.long))   # input untouched
    same = drop_labels(labels, NULL, 0.2, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    assert torch.equal(drop_labels(labels, NULL, 0.0, 0.0), labels)


def test_scale_one_is_the_conditional_model_in_one_pass():
    d = Recorder()
    x, s, y = torch.randn(4, 2, 8), torch.rand(4), torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0]])
    out = CFGDenoiser(d, 1.0, NULL)(x, s, y)
    assert len(d.calls) == 1 and d.calls[0][0] == 4
    torch.testing.assert_close(out, Recorder()(x, s, y))


def test_batched_guidance_equals_the_two_pass_formula():
    d = Recorder()
    x, s, y = torch.randn(4, 2, 8), torch.rand(4), torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0]])
    w = 3.0
    out = CFGDenoiser(d, w, NULL)(x, s, y)
    assert len(d.calls) == 1 and d.calls[0][0] == 8           # one batched forward of cond + uncond
    assert torch.equal(d.calls[0][1][:4], y)                   # conditional half: labels as given
    assert torch.equal(d.calls[0][1][4:], torch.tensor([NULL] * 4))
    ref = Recorder()
    cond, unc = ref(x, s, y), ref(x, s, torch.tensor([NULL] * 4))
    torch.testing.assert_close(out, unc + w * (cond - unc))


def test_sampling_never_drops_labels():
    d = Recorder()
    y = torch.tensor([[0, 1], [1, 0]])
    g = CFGDenoiser(d, 2.0, NULL)
    inputs = [(torch.randn(2, 1, 4), torch.rand(2)) for _ in range(50)]
    state = torch.random.get_rng_state()
    for x, s in inputs:
        g(x, s, y)
    assert all(torch.equal(lab[:2], y) for _, lab in d.calls)   # the conditional half always has the labels
    assert torch.equal(torch.random.get_rng_state(), state)      # and guidance draws no random numbers
