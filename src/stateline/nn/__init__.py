"""PyTorch recurrent models (LSTM/GRU stacks and heads) that speak the carry contract.

`initial_carry(n)`, `step(carry, x)`, `forward(xs, carry, reset=..., mask=...)`.

This layer is filled by its own issue; the folder exists so the layering is visible from the
first commit (data -> nn -> train -> stream -> anomaly -> serve, with cli on top).
"""
