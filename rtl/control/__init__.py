"""Control: the ISA, the sequencer and its operand checks, error codes, the register map and its AXI4-Lite block."""
