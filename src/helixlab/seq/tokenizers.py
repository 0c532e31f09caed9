"""DNA tokenizers: one `Tokenizer` class for nucleotide, overlapping k-mer, window and subword tokens.

Every tokenizer maps uint8 base codes (N, L) to token ids (N, T) with [CLS] ... [SEP] around the
tokens and [PAD] after them, plus an attention mask. Nucleotide, k-mer and window tokens are a
table lookup on `kmer_ids` (vectorised in torch); subword tokens come from a Hugging Face
`tokenizers` BPE or WordPiece model trained on the user's sequences (batched in Rust).

The vocabulary is saved as one JSON file with the run (`Tokenizer.save` / `Tokenizer.load`);
a DNABERT-style `vocab.txt` (any token order) is read by `Tokenizer.from_vocab_file`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helixlab.errors import HelixError
from helixlab.paths import atomic_path
from helixlab.seq import alphabet
from helixlab.seq.alphabet import all_kmers, kmer_ids

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
KINDS = ("nucleotide", "kmer", "window", "subword")
_FORMAT = "helixlab-tokenizer/1"


class Tokenizer:
    """kind: 'nucleotide' | 'kmer' (overlapping, stride 1) | 'window' (non-overlapping, stride k) | 'subword'."""

    def __init__(self, kind: str, vocab: list[str], *, k: int = 1, subword_json: str | None = None) -> None:
        if kind not in KINDS:
            raise HelixError(f"unknown tokenizer {kind!r}; expected one of {', '.join(KINDS)}")
        missing = [s for s in SPECIALS if s not in vocab]
        if missing:
            raise HelixError(f"tokenizer vocabulary lacks the special tokens {missing}")
        if len(set(vocab)) != len(vocab):
            raise HelixError("tokenizer vocabulary has duplicate tokens")
        self.kind, self.k, self.vocab = kind, (1 if kind == "nucleotide" else k), list(vocab)
        self.index = {tok: i for i, tok in enumerate(self.vocab)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.index[s] for s in SPECIALS)
        self.special_ids = torch.tensor([self.index[s] for s in SPECIALS])
        self.plain_ids = torch.tensor([i for i, t in enumerate(self.vocab) if t not in SPECIALS])
        self._subword: Any = None
        self.subword_json = subword_json
        if kind == "subword":
            if subword_json is None:
                raise HelixError("a subword tokenizer needs its trained model (subword_json)")
            from tokenizers import Tokenizer as HFTokenizer
            from tokenizers.processors import TemplateProcessing

            # [CLS] ... [SEP] and [PAD] to the batch's longest are added in Rust, by the batch
            self._subword = HFTokenizer.from_str(subword_json)
            self._subword.no_truncation()
            self._subword.post_processor = TemplateProcessing(
                single="[CLS] $A [SEP]", special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)])
            self._subword.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")
        else:
            # canonical k-mer id (kmer_ids) -> vocabulary id; the N id -> "N" for nucleotides, else [UNK]
            lut = [self.index.get(s, self.unk_id) for s in all_kmers(self.k)]
            lut.append(self.index.get("N", self.unk_id) if self.k == 1 else self.unk_id)
            self._lut = torch.tensor(lut, dtype=torch.long)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, kind: str, k: int = 6) -> Tokenizer:
        """The standard vocabulary of a fixed tokenizer: specials, then tokens in `kmer_ids` order."""
        if kind == "nucleotide":
            return cls(kind, [*SPECIALS, "A", "C", "G", "T", "N"])
        if kind in ("kmer", "window"):
            if not 1 <= k <= 8:
                raise HelixError(f"k-mer size must be 1..8, got {k}")
            return cls(kind, [*SPECIALS, *all_kmers(k)], k=k)
        if kind == "subword":
            raise HelixError("a subword tokenizer is trained on sequences: use Tokenizer.train_subword")
        raise HelixError(f"unknown tokenizer {kind!r}; expected one of {', '.join(KINDS)}")

    @classmethod
    def train_subword(cls, sequences: Iterable[str], vocab_size: int = 512, model: str = "bpe") -> Tokenizer:
        """Train a BPE or WordPiece vocabulary on DNA strings (each sequence is one 'word')."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        alphabet_ = ["A", "C", "G", "T", "N"]
        if model == "bpe":
            tok = HFTokenizer(models.BPE(unk_token="[UNK]"))
            trainer: Any = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                               initial_alphabet=alphabet_, show_progress=False)
        elif model == "wordpiece":
            tok = HFTokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100_000))
            tok.decoder = decoders.WordPiece()
            trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                                initial_alphabet=alphabet_, show_progress=False)
        else:
            raise HelixError(f"subword model must be bpe or wordpiece, got {model!r}")
        # N splits a sequence into words, so an N never hides the bases around it in an [UNK]
        tok.pre_tokenizer = pre_tokenizers.Split("N", behavior="isolated")
        tok.train_from_iterator(sequences, trainer=trainer)
        vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
        return cls("subword", vocab, subword_json=tok.to_str())

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike[str], kind: str | None = None) -> Tokenizer:
        """A DNABERT-style vocab.txt (one token per line, any order): k-mer, nucleotide or window tokens.

        The kind is inferred (all tokens k-mers of one length: 'kmer', or 'nucleotide' for k = 1)
        unless given ('window' must be given: the vocabulary alone cannot tell it from 'kmer')."""
        vocab = Path(path).read_text().split("\n")
        vocab = [t.strip() for t in vocab if t.strip()]
        plain = [t for t in vocab if t not in SPECIALS]
        lengths = {len(t) for t in plain if t != "N"}
        if len(lengths) != 1 or not all(set(t) <= set("ACGTN") for t in plain):
            raise HelixError("vocabulary is not made of k-mers over ACGT of one length; a subword vocabulary "
                             "needs its tokenizer.json", path=str(path))
        k = lengths.pop()
        inferred = "nucleotide" if k == 1 else "kmer"
        return cls(kind or inferred, vocab, k=k)

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT, "kind": self.kind, "k": self.k, "vocab": self.vocab,
                "subword": self.subword_json}

    def save(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path, overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        p = Path(path)
        if not p.exists():
            raise HelixError("tokenizer file not found", path=str(p))
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise HelixError(f"tokenizer file is not valid JSON ({exc})", path=str(p)) from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise HelixError(f"not a helixlab tokenizer file (expected format {_FORMAT!r})", path=str(p))
        return cls(d["kind"], d["vocab"], k=d["k"], subword_json=d.get("subword"))

    # ---- encoding -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def mask_span(self) -> int:
        """Tokens to mask together in MLM pretraining: k for overlapping k-mers (DNABERT), else 1."""
        return self.k if self.kind == "kmer" else 1

    def base_matrix(self) -> torch.Tensor:
        """(vocab, 4k) float: row t one-hot encodes the bases of token t, block j (4 columns) for its
        j-th base; rows of specials, [UNK] and tokens with N are zero. Fixed tokenizers only."""
        if self.kind == "subword":
            raise HelixError("subword tokens have no fixed length: their bases cannot be composed")
        m = torch.zeros(self.vocab_size, 4 * self.k)
        for t, tok in enumerate(self.vocab):
            if len(tok) == self.k and all(b in "ACGT" for b in tok):
                m[t, [4 * j + "ACGT".index(b) for j, b in enumerate(tok)]] = 1.0
        return m

    def n_tokens(self, length: int) -> int:
        """Tokens (with [CLS] and [SEP]) of a sequence of `length` bases; an upper bound for subwords."""
        if self.kind == "kmer":
            return length - self.k + 3
        if self.kind == "window":
            return length // self.k + 2
        return length + 2

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, L) uint8 -> (ids (N, T) int64, attention mask (N, T) int64), on x's device.

        Trailing N are padding (how variable-length batches arrive): they become [PAD] after [SEP],
        with attention 0. `window` tokens drop the last L % k bases."""
        n = x.shape[0]
        if self.kind == "subword":
            strings = [s.rstrip("N") for s in alphabet.decode_rows(x.cpu().numpy())]
            encodings = self._subword.encode_batch_fast(strings)
            ids = torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(n, -1).to(x.device)
            return ids, (ids != self.pad_id).long()
        if x.shape[1] < self.k:
            raise HelixError(f"sequences of {x.shape[1]} bases are shorter than one {self.k}-base token")
        stride = self.k if self.kind == "window" else 1
        body = self._lut.to(x.device)[kmer_ids(x, self.k, stride)]  # (N, W)
        real = x != 4
        length = torch.where(real.any(1), x.shape[1] - real.flip(1).long().argmax(1), 0)
        n_tok = ((length - self.k) // stride + 1).clamp(min=0)  # tokens of the bases before the padding
        width = body.shape[1]
        keep = torch.arange(width, device=x.device) < n_tok[:, None]
        ids = torch.full((n, width + 2), self.pad_id, dtype=torch.long, device=x.device)
        ids[:, 0] = self.cls_id
        ids[:, 1 : width + 1] = torch.where(keep, body, self.pad_id)
        ids[torch.arange(n, device=x.device), n_tok + 1] = self.sep_id
        ids = ids[:, : int(n_tok.max()) + 2] if n else ids
        return ids, (ids != self.pad_id).long()

    def tokens(self, ids: torch.Tensor) -> list[list[str]]:
        """Token strings of each row (padding dropped)."""
        return [[self.vocab[i] for i in row if i != self.pad_id] for row in ids.tolist()]

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids -> DNA strings (specials dropped; [UNK] k-mers read as N)."""
        specials = set(SPECIALS)
        out = []
        for toks in self.tokens(ids):
            body = [t for t in toks if t not in specials or t == "[UNK]"]
            body = ["N" * self.k if t == "[UNK]" else t for t in body]
            if self.kind == "kmer":  # each base is read from any known k-mer covering it
                bases = ["N"] * (len(body) + self.k - 1 if body else 0)
                for i, t in enumerate(body):
                    if t != "N" * self.k:
                        bases[i : i + self.k] = t
                out.append("".join(bases))
            elif self.kind == "subword":
                out.append("".join(t.removeprefix("##") for t in body))
            else:
                out.append("".join(body))
        return out

    def encode_strings(self, seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Convenience for equal-length strings (tests, notebooks)."""
        codes = np.stack([alphabet.encode(s) for s in seqs])
        return self.encode(torch.from_numpy(codes))
