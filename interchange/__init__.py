"""NIR in and out: read a NIR graph into the integer contract, write an integer model as a NIR graph.

The Neuromorphic Intermediate Representation (NIR) is an HDF5 file of nodes (``Affine``, ``LIF``,
...) and edges with continuous-time neuron parameters. docs/nir.md gives the mapping both ways.

- :mod:`esl_hw.interchange.nir_read`: the file to checked plain parameters (h5py, no code run);
- :mod:`esl_hw.interchange.nir_float`: those parameters as a discrete-time float network, and its
  simulation on the rate encoder's spikes (the float accuracy beside the integer one);
- :mod:`esl_hw.interchange.nir_quantise`: the float network to an integer
  :class:`~esl_hw.artifact.Model`, with calibration and error bounds;
- :mod:`esl_hw.interchange.nir_write`: an integer model to a NIR graph file;
- :mod:`esl_hw.interchange.nir_snntorch`: a NIR file run by snnTorch's own importer.

nir, h5py, snntorch and torch come with the ``nir`` extra and are imported only inside functions
(:func:`esl_hw.interchange.extra.require`), so that this package loads with numpy alone.
"""
