"""A run directory after training: loading it for inference, its records, its report and model card."""
