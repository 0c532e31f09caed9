"""Interpreting a trained run: attributions (ISM, captum methods, logos, metaplots) and flank ablation."""
