"""Training side of imdsr: the IMDeception model family, data, recipe and evaluation."""
