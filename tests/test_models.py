import pytest
import torch

from helixlab.errors import HelixError
from helixlab.models import REGISTRY, build_model, count_params


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("length", [70, 300])
def test_every_model_maps_uint8_to_outputs(name, length):
    params = {}
    if name in ("kmer_count", "fused", "context_count", "repeat_mixture"):  # they read centred (odd-length) windows
        length += 1
    if name == "repeat_mixture":  # built from its parts (recorded from finished runs): fresh ones here
        part = {"name": "mlp", "params": {"hidden": [8]}, "flank": 10}
        params = {"parts": [{**part, "target": "repeat"}, {**part, "target": "base"}, {**part, "target": "base"}]}
    torch.manual_seed(0)
    model = build_model(name, params, length, 3)
    x = torch.randint(0, 5, (4, length), dtype=torch.uint8)
    model.eval()
    out = model(x)
    assert out.shape == (4, 3) and out.dtype == torch.float32
    # batch-size invariance in eval mode
    assert torch.allclose(model(x[:2]), out[:2], atol=1e-5)
    assert model.features(x).shape == (4, model.feature_dim)


def test_cnn_lstm_has_the_published_s4_shape():
    model = build_model("cnn_lstm", {}, 80, 1)
    conv = model.convs.blocks[0][0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size[0]) == (4, 1000, 30)
    assert model.rnn.hidden_size == 320 and model.rnn.bidirectional
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [64, 64, 1]
    # conv 4*1000*30+1000, BiLSTM 2*4*(320*(1000+320)+2*320), dense 640*64+64 + 64*64+64 + 64+1
    expected = 121000 + 2 * 4 * (320 * 1320 + 640) + (640 * 64 + 64) + (64 * 64 + 64) + 65
    assert count_params(model) == expected


def test_cnn_gru_has_two_convs_and_five_linear_layers():
    model = build_model("cnn_gru", {}, 300, 1)
    assert len(model.convs.blocks) == 2
    assert sum(isinstance(m, torch.nn.Linear) for m in model.head) == 5


def test_kmer_linear_counts_kmers():
    model = build_model("kmer_linear", {"ks": [1], "log_counts": False}, 8, 1)
    model.eval()
    x = torch.tensor([[0, 0, 1, 2, 3, 3, 3, 4]], dtype=torch.uint8)
    assert model.spectrum(x).tolist() == [[2 / 8, 1 / 8, 1 / 8, 3 / 8]]


def test_flatten_and_mlp_need_fixed_length():
    with pytest.raises(HelixError, match="fixed-length"):
        build_model("mlp", {}, None, 1)
    with pytest.raises(HelixError, match="fixed-length"):
        build_model("cnn", {"pooling": "flatten"}, None, 1)
    with pytest.raises(HelixError, match="fixed-length"):
        build_model("cnn", {"pooling": "flatten_maxmean"}, None, 1)
    with pytest.raises(HelixError, match="unknown pooling 'sum'"):
        build_model("cnn", {"pooling": "sum"}, 40, 1)


def test_flatten_maxmean_keeps_the_positions_and_the_global_summaries():
    params = {"channels": [6], "kernels": [5], "pools": [2], "pooling": "flatten_maxmean", "hidden": [4]}
    model = build_model("cnn", params, 20, 1).eval()
    assert model.feature_dim == 6 * 10 + 2 * 6
    x = torch.randint(0, 4, (2, 20), dtype=torch.uint8)
    feats = model.features(x)
    h = model.convs(torch.nn.functional.one_hot(x.long(), 4).float().transpose(1, 2))
    assert torch.allclose(feats, torch.cat([h.flatten(1), h.amax(-1), h.mean(-1)], 1))


def test_cnn_bottleneck_narrows_the_flatten_head():
    params = {"channels": [16, 16], "kernels": [5, 5], "pools": [2, 2], "pooling": "flatten", "hidden": [8]}
    wide, narrow = build_model("cnn", params, 40, 1), build_model("cnn", {**params, "bottleneck": 4}, 40, 1)
    assert (wide.feature_dim, narrow.feature_dim) == (16 * 10, 4 * 10)
    conv = narrow.bottleneck.blocks[0][0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size[0]) == (16, 4, 1)
    # the head shrinks by (160 - 40) * 8 weights; the 1x1 conv (no bias, batch norm) adds 16*4 + 2*4
    assert count_params(wide) - count_params(narrow) == 120 * 8 - (16 * 4 + 8)
    narrow.eval()
    assert narrow(torch.randint(0, 5, (3, 40), dtype=torch.uint8)).shape == (3, 1)
    with pytest.raises(HelixError, match="bottleneck must be 0"):
        build_model("cnn", {**params, "bottleneck": -1}, 40, 1)


def test_cnn_attention_relates_positions_beyond_the_receptive_field():
    torch.manual_seed(0)
    params = {"channels": [8], "kernels": [3], "pools": [1], "pooling": "flatten", "hidden": [4], "dropout": 0.0}
    x = torch.randint(0, 4, (2, 40), dtype=torch.uint8)
    far = x.clone()
    far[:, -1] = (far[:, -1] + 1) % 4  # only the last base differs: outside position 0's 3-base window
    for layers, reaches in ((0, False), (1, True)):
        model = build_model("cnn", {**params, "attention": layers, "heads": 2}, 40, 1).eval()
        first = model.features(x)[:, :8 * 40].view(2, 8, 40)[..., 0]
        moved = model.features(far)[:, :8 * 40].view(2, 8, 40)[..., 0]
        assert (not torch.allclose(first, moved)) == reaches
    with pytest.raises(HelixError, match="attention must be 0"):
        build_model("cnn", {**params, "attention": -1}, 40, 1)
    with pytest.raises(HelixError, match="heads \\(3\\) must divide the channels \\(8\\)"):
        build_model("cnn", {**params, "attention": 1, "heads": 3}, 40, 1)
    with pytest.raises(HelixError, match="attention heads must be a positive number, got 0"):
        build_model("cnn", {**params, "attention": 1, "heads": 0}, 40, 1)
    with pytest.raises(HelixError, match="attention needs fixed-length"):
        build_model("cnn", {**params, "pooling": "max", "attention": 1, "heads": 2}, None, 1)
