"""The systolic array and its vector lanes: PE, mesh, tiling front end, lanes."""
