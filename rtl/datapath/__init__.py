"""The compute datapath: a dispatcher wiring small engines around the array and the units."""
