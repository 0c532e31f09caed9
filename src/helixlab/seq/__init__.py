"""Sequences as uint8 codes: the alphabet (lookup tables, one-hot, reverse complement, k-mer ids),
tokenizers and the per-record transforms (crop, padding, filters)."""
