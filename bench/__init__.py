"""The benchmarks behind ``imdsr bench``: each measures side by side in one run and prints ratios."""
