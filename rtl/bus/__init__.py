"""AXI interfaces, DMA engines and the DDR load engine."""
