"""Training data: building an HR photo set, caching LR images, sampling crop pairs."""
