"""Recurrent models: a front end (one-hot, conv stack or k-mer window embedding) -> bidirectional
GRU/LSTM -> pooling -> dense head. `gru`, `cnn_gru`, `window_gru` and `cnn_lstm` are this one
class with different defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from helixlab.models.base import SequenceModel, full_precision
from helixlab.models.layers import ConvStack, mlp
from helixlab.models.registry import register
from helixlab.seq.alphabet import kmer_ids, kmer_vocab_size, one_hot


@dataclass
class RecurrentConfig:
    """Front end 'onehot' | 'conv' | 'window'; cell 'gru' | 'lstm'; pooling over time
    'last' (final states of both directions) | 'mean' | 'max' | 'maxmean' | 'centre' (the outputs at the
    middle step: each direction has read one flank, for predicting the centre of a window)."""

    front: str = "onehot"
    channels: list[int] = field(default_factory=list)
    kernels: list[int] = field(default_factory=list)
    pools: list[int] = field(default_factory=list)
    conv_batch_norm: bool = True
    window: int = 4
    embed_dim: int = 64
    cell: str = "gru"
    hidden_size: int = 64
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "maxmean"
    hidden: list[int] = field(default_factory=lambda: [64])
    dropout: float = 0.2
    activation: str = "relu"


@dataclass
class GRUConfig(RecurrentConfig):
    """S1 'GRU only': bidirectional GRU on one-hot bases + linear layers."""

    hidden: list[int] = field(default_factory=lambda: [64, 32])


@dataclass
class CNNGRUConfig(RecurrentConfig):
    """S1 baseline: 2 conv -> 1 bidirectional GRU -> 5 linear layers."""

    front: str = "conv"
    channels: list[int] = field(default_factory=lambda: [128, 128])
    kernels: list[int] = field(default_factory=lambda: [9, 9])
    pools: list[int] = field(default_factory=lambda: [2, 2])
    hidden: list[int] = field(default_factory=lambda: [256, 128, 64, 32])


@dataclass
class WindowGRUConfig(RecurrentConfig):
    """S1 'window + GRU': non-overlapping k-mer windows as tokens -> embedding -> BiGRU."""

    front: str = "window"
    window: int = 4
    hidden: list[int] = field(default_factory=lambda: [64, 32])


@dataclass
class CNNLSTMConfig(RecurrentConfig):
    """S4: conv 1000 x 30 -> max-pool 3 -> dropout 0.2 -> BiLSTM 320 -> dropout 0.2 -> 64 -> 64 -> out."""

    front: str = "conv"
    channels: list[int] = field(default_factory=lambda: [1000])
    kernels: list[int] = field(default_factory=lambda: [30])
    pools: list[int] = field(default_factory=lambda: [3])
    conv_batch_norm: bool = False
    cell: str = "lstm"
    hidden_size: int = 320
    pooling: str = "last"
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    dropout: float = 0.2


class Recurrent(SequenceModel):
    def __init__(self, cfg: RecurrentConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        self.front = cfg.front
        self.window = cfg.window
        self.reads_one_hot = cfg.front != "window"
        # the recurrent layer stays fp32 on a CPU, so only a conv front gains, and only beside a GRU: with the
        # S4 LSTM (320 units) bf16 trains 1.05-1.13x and infers 0.85-0.95x fp32 (benchmarks/results/throughput_intel.md)
        self.bf16_on_cpu = cfg.front == "conv" and cfg.cell == "gru"
        if cfg.front == "onehot":
            in_dim = 4
        elif cfg.front == "conv":
            self.convs = ConvStack(4, cfg.channels, cfg.kernels, cfg.pools, dropout=cfg.dropout,
                                   activation=cfg.activation, batch_norm=cfg.conv_batch_norm)
            in_dim = self.convs.out_channels
        elif cfg.front == "window":
            self.embed = nn.Embedding(kmer_vocab_size(cfg.window), cfg.embed_dim)
            in_dim = cfg.embed_dim
        else:
            raise ValueError(f"unknown front end {cfg.front!r}; expected onehot, conv or window")
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}.get(cfg.cell)
        if rnn_cls is None:
            raise ValueError(f"unknown cell {cfg.cell!r}; expected gru or lstm")
        if cfg.pooling not in ("last", "mean", "max", "maxmean", "centre"):
            raise ValueError(f"unknown pooling {cfg.pooling!r}; expected last, mean, max, maxmean or centre")
        self.rnn = rnn_cls(in_dim, cfg.hidden_size, num_layers=cfg.layers, batch_first=True,
                           bidirectional=cfg.bidirectional)
        self.pooling = cfg.pooling
        self.drop = nn.Dropout(cfg.dropout)
        directions = 2 if cfg.bidirectional else 1
        self.feature_dim = cfg.hidden_size * directions * (2 if cfg.pooling == "maxmean" else 1)
        self.head = mlp(self.feature_dim, cfg.hidden, n_outputs, dropout=cfg.dropout, activation=cfg.activation)

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L) uint8 -> (N, T, D) inputs of the recurrent layer."""
        if self.front == "window":
            return self.embed(kmer_ids(x, self.window, stride=self.window))
        h = one_hot(x)
        if self.front == "conv":
            h = self.convs(h)
        return h.transpose(1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        seq = self._sequence(x)
        with full_precision(seq):
            out, state = self.rnn(seq.float())
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state
            directions = 2 if self.rnn.bidirectional else 1
            feats = h_n[-directions:].transpose(0, 1).flatten(1)
        elif self.pooling == "mean":
            feats = out.mean(1)
        elif self.pooling == "max":
            feats = out.amax(1)
        elif self.pooling == "centre":
            feats = out[:, out.shape[1] // 2]
        else:
            feats = torch.cat([out.amax(1), out.mean(1)], 1)
        return self.drop(feats)


for _name, _config in (("gru", GRUConfig), ("cnn_gru", CNNGRUConfig), ("window_gru", WindowGRUConfig),
                       ("cnn_lstm", CNNLSTMConfig)):
    register(_name, _config)(Recurrent)  # one class, four recipes' defaults
