"""Data: file formats, prepared shards (uint8 memory-mapped arrays), genome windows, negatives, the
splits of a run and the batches the loop reads."""
