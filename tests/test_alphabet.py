import numpy as np
import torch

from helixlab.seq import alphabet
from helixlab.seq.alphabet import kmer_ids


def test_encode_decode_round_trip():
    seq = "ACGTNacgtn"
    codes = alphabet.encode(seq)
    assert codes.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert alphabet.decode(codes) == "ACGTNACGTN"


def test_lowercase_mask_marks_soft_masked_bases():
    assert alphabet.lowercase_mask("ACgtN").tolist() == [0, 0, 1, 1, 0]


def test_invalid_and_iupac_policy():
    codes = alphabet.encode("ACRT")
    assert alphabet.first_invalid(codes) == 2
    assert alphabet.encode("ACRT", iupac="n").tolist() == [0, 1, 4, 3]
    assert alphabet.first_invalid(alphabet.encode("AC-T", iupac="n")) == 2


def test_reverse_complement_numpy_and_torch_agree_and_are_involutions():
    codes = alphabet.encode("AACGTN")
    rc = alphabet.reverse_complement(codes)
    assert alphabet.decode(rc) == "NACGTT"
    t = torch.from_numpy(np.stack([codes, codes]))
    assert torch.equal(alphabet.reverse_complement(alphabet.reverse_complement(t)), t)
    assert alphabet.reverse_complement(t)[0].tolist() == rc.tolist()


def test_one_hot_layout_and_n():
    x = torch.from_numpy(alphabet.encode("ACGTN")[None])
    oh = alphabet.one_hot(x)
    assert oh.shape == (1, 4, 5)
    assert oh[0, :, :4].tolist() == torch.eye(4).tolist()
    assert oh[0, :, 4].tolist() == [0.25] * 4


def test_kmer_ids_overlapping_and_windows():
    x = torch.from_numpy(alphabet.encode("ACGTNA")[None])
    # AC=0*4+1, CG=1*4+2, GT=2*4+3, TN->16, NA->16
    assert kmer_ids(x, 2).tolist() == [[1, 6, 11, 16, 16]]
    assert kmer_ids(x, 2, stride=2).tolist() == [[1, 11, 16]]
