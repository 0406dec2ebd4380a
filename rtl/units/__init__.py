"""The nonlinear units: softmax, LayerNorm, router and their arithmetic."""
