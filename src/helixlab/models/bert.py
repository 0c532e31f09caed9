"""BERT-style encoder over DNA tokens, on Hugging Face `transformers` (BertModel; no hand-written attention).

The model owns its tokenizer, so it takes the same (N, L) uint8 input as every other model.
Heads: [CLS] or mean pooling, then 1 or 2 linear layers (classification or regression, any
number of outputs). Built with `n_outputs=0` it carries a masked-language-model head instead,
for pretraining: the task's step passes the masked tokens (`MaskedTokens`) as the target, and the
outputs are the logits of the masked tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helixlab.errors import HelixError
from helixlab.models.base import MaskedTokens, SequenceModel
from helixlab.models.layers import mlp
from helixlab.models.registry import register
from helixlab.paths import TOKENIZER_FILE
from helixlab.seq.tokenizers import KINDS, Tokenizer

# name -> (layers, hidden, heads, intermediate); "base" is BERT-base (DNABERT, S2, S3)
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072),
}


@dataclass
class BertConfig:
    """tokenizer: nucleotide | kmer (overlapping, DNABERT) | window | subword (BPE/WordPiece trained on
    the training sequences, `subword_vocab` tokens). `vocab`: a tokenizer.json to use (set by the run).
    size: tiny | mini | small | medium | base; layers/hidden/heads/intermediate override it.
    pooling: cls | mean. head_layers: 1 (linear) or 2 (linear-GELU-linear).
    compose_bases: each token's embedding is its own vector plus one learned vector per (position, base)
    of its k-mer, and the tied MLM decoder scores tokens by the same parts, so overlapping k-mers share
    what they have in common from the first step (nucleotide, k-mer and window tokens).
    position_init: random (BERT's) | sinusoidal: the learned position embeddings start as sines and cosines
    of the position (amplitude 0.1), so "the token k places to the left" is one linear map of the position
    from the first step, and attention finds neighbours in tens of steps instead of thousands.
    positions: learned (BERT's: an embedding per position, added to the tokens) | rotary (RoFormer's rotary
    position embeddings: each query and key is rotated by its position, so attention scores depend on the
    offset between two tokens and a head that reads "3 bases to the left" does so at every position; the
    encoder is Hugging Face's RoFormerModel, BERT's layers otherwise).
    conv_embed: 0 (BERT's) or a kernel width K: before the encoder, each token's embedding gains a
    GELU-activated convolution of width K over its neighbours' embeddings (residual, padding masked out), so
    the first layer already sees K-token words (motifs) instead of single bases."""

    tokenizer: str = "kmer"
    k: int = 6
    subword_model: str = "bpe"
    subword_vocab: int = 512
    vocab: str | None = None
    size: str = "mini"
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    intermediate: int | None = None
    dropout: float = 0.1
    max_tokens: int = 512
    pooling: str = "cls"
    head_layers: int = 1
    head_hidden: int | None = None
    head_dropout: float = 0.1
    compose_bases: bool = False
    position_init: str = "random"
    positions: str = "learned"
    conv_embed: int = 0

    def shape(self) -> tuple[int, int, int, int]:
        if self.size not in SIZES:
            raise ValueError(f"unknown BERT size {self.size!r}; choose from {', '.join(SIZES)}")
        layers, hidden, heads, inter = SIZES[self.size]
        return (self.layers or layers, self.hidden or hidden, self.heads or heads,
                self.intermediate or (4 * self.hidden if self.hidden else inter))


def make_tokenizer(cfg: BertConfig, run_dir: Path | None = None) -> Tokenizer:
    """The run's saved tokenizer, the file named by `vocab`, or a fresh fixed vocabulary."""
    if cfg.vocab:
        path = Path(cfg.vocab)
        if not path.is_absolute() and run_dir is not None:
            path = run_dir / path
        return Tokenizer.load(path)
    if cfg.tokenizer not in KINDS:
        raise ValueError(f"unknown tokenizer {cfg.tokenizer!r}; expected one of {', '.join(KINDS)}")
    if cfg.tokenizer == "subword":
        raise ValueError("a subword tokenizer must be trained first: train a run with this config "
                         "(it trains one on the training sequences) or set `vocab` to a tokenizer.json")
    return Tokenizer.create(cfg.tokenizer, cfg.k)


POSITION_INITS = ("random", "sinusoidal")
POSITIONS = ("learned", "rotary")


def sinusoids(n: int, dim: int) -> torch.Tensor:
    """(n, dim) sines (even columns) and cosines (odd) of positions 0..n-1 at geometric wavelengths
    (Vaswani et al. 2017)."""
    angle = torch.arange(n, dtype=torch.float64)[:, None] / 10000 ** (torch.arange(0, dim, 2) / dim)
    out = torch.zeros(n, dim, dtype=torch.float64)
    out[:, 0::2], out[:, 1::2] = torch.sin(angle), torch.cos(angle[:, : dim // 2])
    return out.float()


class MLMHead(nn.Module):
    """dense -> GELU -> LayerNorm -> vocabulary logits, decoder tied to the token embedding table."""

    def __init__(self, hidden: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=eps))
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.transform(h) @ table.T + self.bias


@register("bert", BertConfig)
class Bert(SequenceModel):
    reads_one_hot = False  # reads tokens, not one-hot bases
    bf16_on_gpu = True  # H200: training 1.6x (tiny, batch 1,024) to 5.9x (base) fp32 (benchmarks/results/gpu.md)
    keeps_run_files = True

    def __init__(self, cfg: BertConfig, seq_len: int | None, n_outputs: int, *, run_dir: Path | None = None) -> None:
        super().__init__()
        from transformers import BertConfig as HFBertConfig
        from transformers import BertModel, RoFormerConfig, RoFormerModel

        if cfg.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be cls or mean, got {cfg.pooling!r}")
        if cfg.position_init not in POSITION_INITS:
            raise ValueError(f"position_init must be one of {', '.join(POSITION_INITS)}, got {cfg.position_init!r}")
        if cfg.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {cfg.positions!r}")
        if cfg.positions == "rotary" and cfg.position_init != "random":
            raise ValueError("position_init sets learned position embeddings; rotary positions have none")
        if cfg.head_layers not in (1, 2):
            raise ValueError(f"head_layers must be 1 or 2, got {cfg.head_layers}")
        if cfg.conv_embed < 0 or (cfg.conv_embed and cfg.conv_embed % 2 == 0):
            raise ValueError(f"conv_embed must be 0 or an odd kernel width, got {cfg.conv_embed}")
        if cfg.compose_bases and cfg.tokenizer == "subword":
            raise ValueError("compose_bases needs nucleotide, k-mer or window tokens, not subword")
        self.cfg = cfg
        self.tokenizer = make_tokenizer(cfg, run_dir)
        layers, hidden, heads, inter = cfg.shape()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        fixed = self.tokenizer.kind != "subword"
        if seq_len is not None and fixed and seq_len < self.tokenizer.k:
            raise ValueError(f"sequences of {seq_len} bp are shorter than one {self.tokenizer.k}-base token")
        if seq_len is not None and fixed and self.tokenizer.n_tokens(seq_len) > cfg.max_tokens:
            raise ValueError(f"{seq_len} bp make {self.tokenizer.n_tokens(seq_len)} tokens, more than "
                             f"max_tokens={cfg.max_tokens}")
        shape = dict(vocab_size=self.tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=inter, hidden_act="gelu",
                     hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                     max_position_embeddings=cfg.max_tokens, type_vocab_size=2, pad_token_id=self.tokenizer.pad_id)
        if cfg.positions == "rotary":  # RoFormer: eager attention (its rotation sits inside the attention layer)
            self.hf_config = RoFormerConfig(**shape, embedding_size=hidden)
            self.bert = RoFormerModel(self.hf_config)
        else:
            self.hf_config = HFBertConfig(**shape)
            self.hf_config._attn_implementation = "sdpa"
            self.bert = BertModel(self.hf_config, add_pooling_layer=False)
        if cfg.position_init == "sinusoidal":
            with torch.no_grad():
                self.bert.embeddings.position_embeddings.weight.copy_(0.1 * sinusoids(cfg.max_tokens, hidden))
        if cfg.compose_bases:
            self.register_buffer("token_bases", self.tokenizer.base_matrix(), persistent=False)
            self.base_embeddings = nn.Parameter(torch.randn(4 * self.tokenizer.k, hidden)
                                                * self.hf_config.initializer_range)
        if cfg.conv_embed:
            self.embed_conv = nn.Conv1d(hidden, hidden, cfg.conv_embed, padding=cfg.conv_embed // 2)
        self.feature_dim = hidden
        self.head_dropout = nn.Dropout(cfg.head_dropout)
        if n_outputs == 0:
            self.lm_head = MLMHead(hidden, self.tokenizer.vocab_size, self.hf_config.layer_norm_eps)
            self.head = nn.Identity()
        else:
            width = cfg.head_hidden or hidden
            self.head = mlp(hidden, [width] * (cfg.head_layers - 1), n_outputs, dropout=cfg.head_dropout,
                            activation="gelu")

    @classmethod
    def prepare_run(cls, params: dict[str, Any], run_dir: Path, sequences: Any) -> dict[str, Any]:
        """Fix the run's tokenizer before the model is built: train a subword vocabulary on the
        training sequences if needed, save tokenizer.json in the run and point `vocab` at it."""
        cfg = BertConfig(**params)
        if cfg.vocab and Path(cfg.vocab) == Path(TOKENIZER_FILE) and (run_dir / TOKENIZER_FILE).exists():
            return params
        if cfg.vocab:
            tok = Tokenizer.load(cfg.vocab)
        elif cfg.tokenizer == "subword":
            tok = Tokenizer.train_subword(sequences(), cfg.subword_vocab, cfg.subword_model)
        else:
            tok = Tokenizer.create(cfg.tokenizer, cfg.k)
        tok.save(run_dir / TOKENIZER_FILE)
        return {**params, "vocab": TOKENIZER_FILE, "tokenizer": tok.kind, "k": tok.k}

    def check_length(self, max_length: int) -> None:
        if self.tokenizer.kind != "subword" and self.tokenizer.n_tokens(max_length) > self.cfg.max_tokens:
            raise ValueError(f"sequences of up to {max_length} bp make {self.tokenizer.n_tokens(max_length)} "
                             f"tokens, more than max_tokens={self.cfg.max_tokens}")

    def token_table(self) -> torch.Tensor:
        """(vocab, hidden): the token embeddings, with their bases' vectors added under compose_bases."""
        table = self.bert.embeddings.word_embeddings.weight
        if self.cfg.compose_bases:
            table = table + self.token_bases.to(table.dtype) @ self.base_embeddings
        return table

    def encode(self, ids: torch.Tensor, attention: torch.Tensor, *, output_attentions: bool = False) -> Any:
        if ids.shape[1] > self.cfg.max_tokens:
            raise HelixError(f"input has {ids.shape[1]} tokens, more than the model's max_tokens={self.cfg.max_tokens}")
        if not (self.cfg.compose_bases or self.cfg.conv_embed):
            return self.bert(input_ids=ids, attention_mask=attention, output_attentions=output_attentions)
        e = nn.functional.embedding(ids, self.token_table())
        if self.cfg.conv_embed:
            keep = attention.unsqueeze(-1).to(e.dtype)
            e = e + nn.functional.gelu(self.embed_conv((e * keep).transpose(1, 2))).transpose(1, 2)
        return self.bert(inputs_embeds=e, attention_mask=attention, output_attentions=output_attentions)

    def pool(self, h: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        if self.cfg.pooling == "cls":
            return h[:, 0]
        w = attention.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp(min=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        ids, attention = self.tokenizer.encode(x)
        return self.pool(self.encode(ids, attention).last_hidden_state, attention)

    def outputs(self, x: torch.Tensor, strand: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.head_dropout(self.features(x)))

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """Pretraining (target: MaskedTokens): logits (M, vocab) of the M masked tokens; else `outputs`."""
        if not isinstance(target, MaskedTokens):
            return self.outputs(x, strand)
        h = self.encode(target.ids, target.attention).last_hidden_state
        return self.lm_head(h[target.labels != -100], self.token_table())

    @torch.no_grad()
    def attentions(self, x: torch.Tensor, layer: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights of one layer: (token ids (N, T), weights (N, heads, T, T))."""
        n_layers = self.hf_config.num_hidden_layers
        if not -n_layers <= layer < n_layers:
            raise HelixError(f"attention layer {layer} does not exist; the model has {n_layers} layers")
        ids, attention = self.tokenizer.encode(x)
        if self.cfg.positions == "rotary":  # eager attention already
            return ids, self.encode(ids, attention, output_attentions=True).attentions[layer]
        self.bert.set_attn_implementation("eager")  # SDPA does not return the weights
        try:
            out = self.encode(ids, attention, output_attentions=True)
        finally:
            self.bert.set_attn_implementation("sdpa")
        return ids, out.attentions[layer]
