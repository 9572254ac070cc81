"""Triton's side of the system: the launcher of a real ``tritonserver`` and the Python-backend
model it runs on CPU. Imports no torch."""
