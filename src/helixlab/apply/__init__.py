"""Using a trained run: the Python API (`helixlab.load`), prediction, evaluation, variant effects,
ONNX export and the DREAM 2022 scorer."""
