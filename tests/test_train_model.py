"""Tests for esl_hw.train.model: integer mode equals the numpy reference bit for bit; QAT and STE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esl_hw.artifact import signed_range
from esl_hw.reference import leak, run
from esl_hw.train.export import model_from_net
from esl_hw.train.model import LIFNet, encode_batch, event_matmul
from esl_hw.train.neurons import LIFParams, lif_step, straight_through


def _random_net(seed: int, **overrides) -> LIFNet:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    v_bits = int(rng.integers(3, 17))
    options = {
        "hidden": [int(size) for size in rng.integers(1, 12, size=rng.integers(1, 4))],
        "n_in": 20,
        "n_out": 5,
        "timesteps": int(rng.integers(1, 10)),
        "w_bits": int(rng.integers(2, 9)),
        "v_bits": v_bits,
        "leak_shift": [None, *range(1, v_bits)][int(rng.integers(0, v_bits))],
        "threshold": float(rng.uniform(0.05, 3.0)),
    }
    options.update(overrides)
    net = LIFNet(**options)
    with torch.no_grad():
        for weight, mask in zip(net.weights, net.masks(), strict=True):
            weight.normal_(0.2, 1.0, generator=generator)
            mask.copy_(torch.rand(mask.shape, generator=generator) < 0.6)
    return net


def _compare(net: LIFNet, seed: int) -> tuple[bool, bool, bool]:
    """Assert exact equality with the reference; return (saturated high, saturated low, negative seen)."""
    generator = torch.Generator().manual_seed(seed + 1000)
    spikes = torch.rand(net.timesteps, 7, net.sizes[0], generator=generator) < 0.4
    trace = net.forward_integer(spikes)
    reference = run(model_from_net(net), spikes.numpy())
    assert len(trace.spikes) == len(reference.spikes) == net.n_layers - 1
    for ours, theirs in zip(trace.spikes, reference.spikes, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    for ours, theirs in zip(trace.potentials, reference.potentials, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    np.testing.assert_array_equal(trace.outputs.numpy(), reference.outputs)
    np.testing.assert_array_equal(trace.predictions.numpy(), reference.predictions)
    return _saturation(net, model_from_net(net), spikes.numpy(), reference)


def _saturation(net: LIFNet, model, spikes: np.ndarray, reference) -> tuple[bool, bool, bool]:
    """Replay the unclamped updates ``v − (v >> k) + I`` to see whether either bound was hit."""
    low, high = signed_range(net.v_bits)
    above = below = False
    for index, layer in enumerate(model.hidden_layers):
        if layer.kind != "lif" or layer.bias is not None:
            continue  # the check below recomputes the plain lif update only
        inputs = spikes if index == 0 else reference.spikes[index - 1]
        previous = np.zeros_like(reference.potentials[index][0])
        for step in range(net.timesteps):
            current = inputs[step].astype(np.int64) @ layer.dense_weight()
            unclamped = leak(previous, layer.leak_shift) + current
            above |= bool((unclamped > high).any())
            below |= bool((unclamped < low).any())
            previous = reference.potentials[index][step]
    negative = any(bool((p < 0).any()) for p in reference.potentials)
    return above, below, negative


def test_integer_mode_equals_reference_on_random_models() -> None:
    seen_high = seen_low = seen_negative = seen_no_leak = seen_deep = False
    for seed in range(40):
        net = _random_net(seed)
        high, low, negative = _compare(net, seed)
        seen_high |= high
        seen_low |= low
        seen_negative |= negative
        seen_no_leak |= net.leak_shift is None
        seen_deep |= net.n_layers >= 3
    assert seen_high and seen_low and seen_negative and seen_no_leak and seen_deep


@pytest.mark.parametrize("leak_shift", [None, 1, 3])
def test_integer_mode_saturates_like_the_reference(leak_shift: int | None) -> None:
    net = _random_net(
        7, hidden=[9, 6], v_bits=4, w_bits=6, threshold=50.0, leak_shift=leak_shift, timesteps=6
    )
    high, low, _ = _compare(net, 7)
    assert high and low
    assert net.integer_thresholds() == [7, 7]  # θ capped at the top of the 4-bit range


def test_qat_forward_is_the_integer_arithmetic() -> None:
    for seed in range(10):
        net = _random_net(seed)
        spikes = torch.rand(net.timesteps, 5, 20, generator=torch.Generator().manual_seed(seed)) < 0.4
        logits = net(spikes.float(), mode="qat")
        outputs = net.forward_integer(spikes).outputs
        rescaled = logits * net.timesteps / net.scale(net.n_layers - 1)
        torch.testing.assert_close(rescaled, outputs.float(), rtol=1e-5, atol=1e-3)


def test_quantisation_follows_the_stated_equations() -> None:
    net = _random_net(3, w_bits=5, threshold=1.3)
    for index, (weight, mask) in enumerate(zip(net.weights, net.masks(), strict=True)):
        scale = float((weight.detach() * mask).abs().max()) / 15
        assert float(net.scale(index)) == pytest.approx(scale)
        expected = torch.clamp(torch.round(weight.detach() * mask / net.scale(index)), -15, 15)
        assert torch.equal(net.integer_weights()[index], expected.to(torch.int64))
        assert not net.integer_weights()[index][~mask].any()
        assert int(net.integer_weights()[index].abs().max()) == 15
    for index, theta in enumerate(net.integer_thresholds()):
        assert theta == max(1, round(1.3 / float(net.scale(index))))


def test_forward_ignores_inactive_weights_but_gradients_are_dense() -> None:
    net = LIFNet([16], n_in=30, n_out=4, timesteps=4, threshold=0.5)
    net.reset_parameters([0.5, 1.0])
    with torch.no_grad():
        net.masks()[0].copy_(torch.rand(30, 16) < 0.5)
    spikes = (torch.rand(4, 12, 30) < 0.5).float()
    labels = torch.randint(0, 4, (12,))
    for mode in ("qat", "float"):
        net.zero_grad()
        logits = net(spikes, mode=mode)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        grad = net.weights[0].grad.clone()
        assert grad[net.masks()[0]].abs().sum() > 0
        assert grad[~net.masks()[0]].abs().sum() > 0  # dense: what gradient/momentum growth ranks
        assert net.weights[1].grad.abs().sum() > 0
        with torch.no_grad():
            net.weights[0][~net.masks()[0]] += 3.0  # inactive weights must not change the forward
        assert torch.equal(net(spikes, mode=mode), logits.detach())
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(spikes, mode=mode), labels).backward()
        assert torch.equal(net.weights[0].grad, grad)


def test_float_mode_uses_beta_and_float_threshold() -> None:
    net = LIFNet([1], n_in=1, n_out=1, timesteps=3, leak_shift=1, threshold=1.0)
    with torch.no_grad():
        net.weights[0].fill_(0.6)
        net.weights[1].fill_(1.0)
    spikes = torch.ones(3, 1, 1)
    # v: 0.6 -> 0.3+0.6=0.9 -> 0.45+0.6=1.05 fires at step 3 only
    assert net(spikes, mode="float").item() == pytest.approx(1.0 / 3)


def test_encode_batch_matches_the_encoder_shape() -> None:
    images = np.array([[0, 255, 128]], dtype=np.uint8)
    spikes = encode_batch(images, 4)
    assert spikes.shape == (4, 1, 3) and spikes.dtype == torch.bool
    assert spikes[:, 0, 0].sum() == 0 and spikes[:, 0, 1].sum() == 4 and spikes[:, 0, 2].sum() == 2


def test_wide_potentials_switch_qat_to_float64_and_stay_exact() -> None:
    net = _random_net(11, v_bits=30, w_bits=16, threshold=0.01, leak_shift=3)
    assert net.qat_dtype(net.timesteps) == torch.float64
    assert _random_net(11, v_bits=16, w_bits=8).qat_dtype(8) == torch.float32
    spikes = torch.rand(net.timesteps, 5, 20, generator=torch.Generator().manual_seed(3)) < 0.5
    outputs = net.forward_integer(spikes).outputs
    reference = run(model_from_net(net), spikes.numpy())
    np.testing.assert_array_equal(outputs.numpy(), reference.outputs)
    logits = net(spikes.float(), mode="qat").double()
    rescaled = logits * net.timesteps / net.scale(net.n_layers - 1).double()
    torch.testing.assert_close(rescaled, outputs.double(), rtol=1e-6, atol=1e-2)


def test_event_driven_input_equals_the_dense_product() -> None:
    torch.manual_seed(3)
    net = LIFNet([24], n_in=40, n_out=5, timesteps=5, threshold=0.5)
    net.reset_parameters([0.4, 1.0])
    spikes = torch.rand(5, 9, 40) < 0.2
    labels = torch.randint(0, 5, (9,))
    results = []
    for inputs in (spikes, spikes.float()):
        net.zero_grad()
        logits = net(inputs, mode="qat")
        torch.nn.functional.cross_entropy(logits, labels).backward()
        results.append((logits.detach(), net.weights[0].grad.clone()))
    assert torch.equal(results[0][0], results[1][0])  # integer-valued QAT sums are exact in any order
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    assert event_matmul(torch.zeros(3, 40, dtype=torch.bool), net.weights[0]).abs().sum() == 0


def _straightforward_logits(net: LIFNet, spikes: torch.Tensor, mode: str) -> torch.Tensor:
    """The plain autograd forward, step by step: ``x_t @ W``, :func:`lif_step`, ``acc += z_t @ W_L``."""
    quantise = mode == "qat"
    dtype = net.qat_dtype(spikes.shape[0]) if quantise else torch.float32
    weights, params = [], []
    for index in range(net.n_layers):
        if quantise:
            scale, units = net.quantised_units(index)
            weights.append(units.to(dtype))
            threshold = float(net.integer_threshold(index, float(scale)))
        else:
            weight = net.weights[index]
            scale, threshold = torch.tensor(1.0), net.threshold
            weights.append(straight_through(weight * net.masks()[index], weight))
        low, high = net.v_range
        params.append(
            LIFParams(
                threshold=threshold, scale=float(scale), leak_shift=net.leak_shift, floor_leak=quantise,
                low=float(low) if quantise else None, high=float(high) if quantise else None,
                slope=net.surrogate_slope, surrogate=net.surrogate,
            )
        )  # fmt: skip
    potentials = [torch.zeros(spikes.shape[1], size, dtype=dtype) for size in net.sizes[1:-1]]
    acc = torch.zeros(spikes.shape[1], net.sizes[-1], dtype=dtype)
    for step in range(spikes.shape[0]):
        x = spikes[step].to(dtype)
        for index in range(net.n_layers - 1):
            x, potentials[index] = lif_step(x @ weights[index], potentials[index], params[index])
        acc = acc + x @ weights[-1]
    return (acc * (scale / spikes.shape[0])).to(torch.float32)


@pytest.mark.parametrize("mode", ["qat", "float"])
@pytest.mark.parametrize("leak_shift", [1, None])
def test_forward_and_gradients_equal_the_straightforward_autograd(mode: str, leak_shift: int | None) -> None:
    torch.manual_seed(4)
    net = LIFNet([14, 9], n_in=24, n_out=5, timesteps=6, v_bits=7, leak_shift=leak_shift, threshold=0.4)
    net.reset_parameters([0.5, 0.7, 1.0], gain=3.0)
    with torch.no_grad():
        net.masks()[0].copy_(torch.rand(24, 14) < 0.5)
    spikes = torch.rand(6, 11, 24) < 0.35
    spikes[:, :, :3] = True  # inputs that spike at every step (one change event each)
    labels = torch.randint(0, 5, (11,))
    results = []
    for forward in (lambda: net(spikes, mode=mode), lambda: _straightforward_logits(net, spikes, mode)):
        net.zero_grad()
        logits = forward()
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        results.append((logits.detach(), loss.detach(), [weight.grad.clone() for weight in net.weights]))
    (logits, loss, grads), (ref_logits, ref_loss, ref_grads) = results
    if mode == "qat":  # the integer grid: bit for bit
        assert torch.equal(logits, ref_logits) and torch.equal(loss, ref_loss)
    else:  # float: the same up to summation order
        torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        assert ref_grad.abs().sum() > 0
        torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6 * float(ref_grad.abs().max()))
    assert float(logits.abs().sum()) > 0


def test_qat_saturates_in_the_fused_forward() -> None:
    """The clamp of the QAT forward is reached (so the equality above covers it) and matches the integers."""
    torch.manual_seed(5)
    net = LIFNet([10], n_in=24, n_out=4, timesteps=5, v_bits=6, leak_shift=None, threshold=2.0)
    net.reset_parameters([1.0, 1.0], gain=3.0)
    spikes = torch.rand(5, 8, 24) < 0.6
    trace = net.forward_integer(spikes)
    low, high = net.v_range
    assert bool((trace.potentials[0] == low).any() or (trace.potentials[0] == high).any())
    logits = net(spikes, mode="qat").double()
    rescaled = logits * net.timesteps / net.scale(1).double()
    torch.testing.assert_close(rescaled, trace.outputs.double(), rtol=1e-6, atol=1e-3)


# ------------------------------------------------------------ any artifact loaded into torch


def _random_artifact(rng: np.random.Generator, v2: bool = True):
    """A constrained-random valid artifact: depth 1..4, sizes 1..40, per-layer widths, thresholds
    and leaks (none or 1..v_bits−1), small widths more often so that saturation is common; with
    ``v2``, biases, reset by subtraction and ``cubalif`` layers (with or without synaptic decay)."""
    from conftest import random_layer

    from esl_hw.artifact import Encoder, Model

    depth = int(rng.integers(1, 5))
    sizes = [int(size) for size in rng.integers(1, 41, depth + 1)]
    layers = []
    for index in range(depth):
        w_bits = int(rng.integers(2, 9)) if rng.random() < 0.7 else int(rng.integers(9, 33))
        density = float(rng.choice([0.05, 0.3, 0.7, 1.0]))
        options = {}
        if v2:
            options["bias"] = bool(rng.random() < 0.5)
        if index == depth - 1:
            layers.append(
                random_layer(rng, sizes[index], sizes[index + 1], "output", density, w_bits, **options)
            )
            continue
        v_bits = int(rng.integers(2, 11)) if rng.random() < 0.7 else int(rng.integers(11, 49))
        top = (1 << (v_bits - 1)) - 1
        threshold = int(min(top, max(1, round(2 ** rng.uniform(0, v_bits - 1)))))
        leak_shift = None if rng.random() < 0.3 else int(rng.integers(1, v_bits)) if v_bits > 2 else 1
        kind = "lif"
        if v2:
            kind = "cubalif" if rng.random() < 0.4 else "lif"
            options["reset"] = "subtract" if rng.random() < 0.5 else "zero"
            options["syn_shift"] = None if rng.random() < 0.3 or v_bits == 2 else int(rng.integers(1, v_bits))
        layers.append(
            random_layer(
                rng,
                sizes[index],
                sizes[index + 1],
                kind,
                density,
                w_bits,
                v_bits,
                threshold,
                leak_shift,
                **options,
            )
        )
    encoder = Encoder(phase0=int(rng.integers(0, 256)))
    return Model(tuple(layers), timesteps=int(rng.integers(1, 9)), encoder=encoder)


def _assert_same_trace(trace, reference) -> None:
    assert len(trace.spikes) == len(reference.spikes)
    for ours, theirs in zip(trace.spikes, reference.spikes, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    for ours, theirs in zip(trace.potentials, reference.potentials, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    np.testing.assert_array_equal(trace.outputs.numpy(), reference.outputs)
    np.testing.assert_array_equal(trace.predictions.numpy(), reference.predictions)


def test_any_artifact_loads_into_torch_and_runs_exactly_like_the_reference() -> None:
    seen = {"depth 1": False, "depth 4": False, "no leak": False, "float64": False, "per-layer v_bits": False}
    seen |= {"saturated high": False, "saturated low": False, "most negative weight": False}
    seen |= {"bias": False, "subtract": False, "cubalif": False}
    for seed in range(150):
        rng = np.random.default_rng(seed)
        model = _random_artifact(rng)
        net = LIFNet.from_model(model)
        spikes = rng.random((model.timesteps, 6, model.n_inputs)) < rng.uniform(0.05, 0.9)
        reference = run(model, spikes)
        _assert_same_trace(net.forward_integer(torch.from_numpy(spikes)), reference)
        hidden = model.hidden_layers
        trace_fired = any(spikes_of_layer.any() for spikes_of_layer in reference.spikes)
        seen["depth 1"] |= not hidden
        seen["depth 4"] |= len(model.layers) == 4
        seen["no leak"] |= any(layer.leak_shift is None for layer in hidden)
        seen["float64"] |= net.weights[0].dtype == torch.float64
        seen["per-layer v_bits"] |= len({layer.v_bits for layer in hidden}) > 1
        seen["bias"] |= any(layer.bias is not None for layer in model.layers)
        seen["subtract"] |= any(layer.reset == "subtract" and trace_fired for layer in hidden)
        seen["cubalif"] |= any(layer.kind == "cubalif" for layer in hidden)
        seen["most negative weight"] |= any(
            (layer.weight == -(1 << (layer.w_bits - 1))).any() for layer in model.layers
        )
        above, below = _clamped(model, spikes, reference)
        seen["saturated high"] |= above
        seen["saturated low"] |= below
    assert all(seen.values()), seen


def _clamped(model, spikes: np.ndarray, reference) -> tuple[bool, bool]:
    """Whether any unclamped update ``v − (v >> k) + I`` of the reference run left its range."""
    above = below = False
    for index, layer in enumerate(model.hidden_layers):
        if layer.kind != "lif" or layer.bias is not None:
            continue  # the check below recomputes the plain lif update only
        inputs = spikes if index == 0 else reference.spikes[index - 1]
        low, high = signed_range(layer.v_bits)
        previous = np.zeros_like(reference.potentials[index][0])
        for step in range(model.timesteps):
            unclamped = (
                leak(previous, layer.leak_shift) + inputs[step].astype(np.int64) @ layer.dense_weight()
            )
            above |= bool((unclamped > high).any())
            below |= bool((unclamped < low).any())
            previous = reference.potentials[index][step]
    return above, below


def test_loaded_artifact_exports_back_to_itself() -> None:
    for seed in range(40):
        model = _random_artifact(np.random.default_rng(seed))
        back = model_from_net(LIFNet.from_model(model))
        assert back.timesteps == model.timesteps and back.encoder == model.encoder
        for ours, theirs in zip(back.layers, model.layers, strict=True):
            assert ours.header() == theirs.header()
            np.testing.assert_array_equal(ours.row_ptr, theirs.row_ptr)
            np.testing.assert_array_equal(ours.dense_weight(), theirs.dense_weight())
            order = np.lexsort((theirs.col, np.repeat(np.arange(theirs.n_in), np.diff(theirs.row_ptr))))
            np.testing.assert_array_equal(ours.col, theirs.col[order])  # synapses by ascending column


def test_loaded_artifact_qat_forward_is_its_integer_arithmetic() -> None:
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        model = _random_artifact(rng)
        net = LIFNet.from_model(model)
        if net.qat_dtype(model.timesteps) != torch.float32:
            continue
        spikes = torch.from_numpy(rng.random((model.timesteps, 5, model.n_inputs)) < 0.5)
        outputs = net.forward_integer(spikes).outputs.double()
        logits = net(spikes, mode="qat").double()
        torch.testing.assert_close(logits * model.timesteps, outputs, rtol=1e-6, atol=1e-3)
        checked += 1
    assert checked >= 20


def test_loaded_artifact_uses_its_encoder_and_leaves_the_rng_alone(rng: np.random.Generator) -> None:
    from esl_hw.artifact import Encoder, Model
    from esl_hw.reference import predict
    from esl_hw.train.export import integer_predictions

    base = _random_artifact(np.random.default_rng(3))
    model = Model(base.layers, timesteps=6, encoder=Encoder(phase0=7))
    state = torch.get_rng_state()
    net = LIFNet.from_model(model)
    assert torch.equal(torch.get_rng_state(), state)
    assert net.encoder == model.encoder
    images = rng.integers(0, 256, (30, model.n_inputs), dtype=np.uint8)
    np.testing.assert_array_equal(integer_predictions(net, images, batch_size=7), predict(model, images))


def test_per_layer_parameters_are_checked_and_uniform_views_refuse_mixed_layers() -> None:
    net = LIFNet(
        [5, 4], n_in=6, n_out=3, w_bits=[3, 4, 5], v_bits=[6, 9], leak_shift=[None, 2], threshold=1.0
    )
    assert net.layer_qmax(2) == 15 and net.layer_v_range(1) == (-256, 255) and net.threshold == 1.0
    for name in ("w_bits", "v_bits", "leak_shift"):
        with pytest.raises(ValueError, match=f"different {name}"):
            getattr(net, name)
    with pytest.raises(ValueError, match="v_bits: 3 values given for 2 layers"):
        LIFNet([5, 4], n_in=6, n_out=3, v_bits=[6, 9, 9])
    from esl_hw.errors import EslError

    with pytest.raises(EslError, match=r"unknown neuron kind 'cuba' \(known: cubalif, lif\)"):
        LIFNet([5], n_in=6, n_out=3, kinds=["cuba"])


def test_per_layer_net_integer_mode_equals_its_export() -> None:
    """A trained-style net (derived scales) with per-layer widths, thresholds and leaks."""
    torch.manual_seed(8)
    net = LIFNet(
        [12, 9, 7], n_in=20, n_out=4, timesteps=6, w_bits=[3, 8, 5, 6], v_bits=[4, 12, 7],
        leak_shift=[1, None, 3], threshold=[0.3, 2.0, 0.8],
    )  # fmt: skip
    net.reset_parameters([0.6, 0.8, 1.0, 1.0], gain=3.0)
    spikes = torch.rand(6, 9, 20) < 0.5
    _assert_same_trace(net.forward_integer(spikes), run(model_from_net(net), spikes.numpy()))
    logits = net(spikes, mode="qat").double()
    rescaled = logits * net.timesteps / net.scale(net.n_layers - 1).double()
    torch.testing.assert_close(rescaled, net.forward_integer(spikes).outputs.double(), rtol=1e-5, atol=1e-3)
