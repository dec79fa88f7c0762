"""Reading, cleaning, windowing, scaling and splitting real recordings; the prepared HDF5 file."""
