import pytest
import torch
from torch import nn

from deepsad_core.exceptions import WeightTransferError
from deepsad_core.model.networks import NETWORK_NAMES, NetworkSpec, resolve_network, transfer_encoder_weights

SHAPES = {
    "mlp": (21,),
    "mnist_lenet": (1, 28, 28),
    "fmnist_lenet": (1, 28, 28),
    "cifar10_lenet": (3, 32, 32),
    "conv": (3, 17, 23),
}


@pytest.fixture(params=NETWORK_NAMES)
def spec(request) -> NetworkSpec:
    return resolve_network(request.param, SHAPES[request.param])


def test_no_bias_and_no_affine_batchnorm_anywhere(spec):
    for module in spec.build_autoencoder().modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            assert module.bias is None, module
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert not module.affine and module.eps == 1e-4, module
        if isinstance(module, nn.LeakyReLU):
            assert module.negative_slope == 0.01


def test_shapes_and_reconstruction_range(spec):
    x = torch.rand(4, *spec.input_shape)
    assert spec.build_encoder()(x).shape == (4, spec.rep_dim)
    recon = spec.build_autoencoder()(x)
    assert recon.shape == x.shape
    assert recon.min() >= 0 and recon.max() <= 1  # sigmoid output: inputs live in [0, 1]


def test_autoencoder_encoder_has_phis_structure(spec):
    phi, ae = spec.build_encoder(), spec.build_autoencoder()
    assert [(k, v.shape) for k, v in phi.state_dict().items()] == [
        (k, v.shape) for k, v in ae.encoder.state_dict().items()
    ]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((21,), "mlp"), ((1, 28, 28), "mnist_lenet"), ((3, 32, 32), "cifar10_lenet"), ((1, 8, 8), "conv")],
)
def test_auto_picks_by_input_shape(shape, expected):
    assert resolve_network("auto", shape).name == expected


@pytest.mark.parametrize(("d", "hidden", "rep"), [(274, (128, 64), 32), (21, (32, 16), 8), (6, (32, 16), 4)])
def test_mlp_defaults_follow_the_papers_odds_nets(d, hidden, rep):
    spec = resolve_network("mlp", (d,))
    assert (spec.hidden_dims, spec.rep_dim) == (hidden, rep)


def test_paper_rep_dims():
    assert resolve_network("mnist_lenet", (1, 28, 28)).rep_dim == 32
    assert resolve_network("fmnist_lenet", (1, 28, 28)).rep_dim == 64
    assert resolve_network("cifar10_lenet", (3, 32, 32)).rep_dim == 128


@pytest.mark.parametrize(
    ("net", "shape", "message"),
    [
        ("mnist_lenet", (3, 32, 32), "needs images of shape"),
        ("mlp", (1, 28, 28), "tabular"),
        ("resnet", (5,), "one of"),
    ],
)
def test_unfit_network_is_refused_clearly(net, shape, message):
    with pytest.raises(ValueError, match=message):
        resolve_network(net, shape)


def test_transfer_copies_every_tensor(spec):
    ae, phi = spec.build_autoencoder(), spec.build_encoder()
    with torch.no_grad():  # make the source differ from a fresh init, buffers included
        for t in ae.encoder.state_dict().values():
            t.add_(1)
    n = transfer_encoder_weights(ae.encoder, phi)
    assert n == len(phi.state_dict())
    for (k, a), b in zip(phi.state_dict().items(), ae.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_transfer_fails_loudly_on_a_mismatched_net():
    source = resolve_network("mlp", (21,)).build_autoencoder().encoder
    target = resolve_network("mlp", (21,), hidden_dims=(64, 16)).build_encoder()
    with pytest.raises(WeightTransferError, match="shape mismatch"):
        transfer_encoder_weights(source, target)


def test_transfer_fails_loudly_where_the_reference_silently_copies_nothing():
    # the reference filters the autoencoder's "encoder.*" keys by phi's names: nothing matches
    ae = resolve_network("mlp", (21,)).build_autoencoder()
    with pytest.raises(WeightTransferError, match="missing"):
        transfer_encoder_weights(ae, resolve_network("mlp", (21,)).build_encoder())


def test_spec_round_trips_through_a_dict(spec):
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
