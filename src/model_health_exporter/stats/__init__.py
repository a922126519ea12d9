"""Pure computations over values and bounded aggregates: numpy/scipy, no I/O."""
