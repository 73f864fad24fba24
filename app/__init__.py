"""The application layer: the ``esl-hw`` command line and what each subcommand does.

This package sits on top of every stage and nothing but the entry points imports it (see "Import
rules" in the README):

- :mod:`esl_hw.app.cli`: the argument parser and ``main`` (the ``esl-hw`` console script);
- :mod:`esl_hw.app.stages`: ``train``, ``export``, ``eval``, ``rtl``, ``sim`` and ``compare``;
- :mod:`esl_hw.app.demo`: ``demo``, every stage in one folder;
- :mod:`esl_hw.app.fpga`: ``synth``, ``bitstream`` and ``run`` (the FPGA flow and the board);
- :mod:`esl_hw.app.cache`: ``cache``, the simulator builds in the build cache;
- :mod:`esl_hw.app.tables`: the terminal tables and the Markdown the commands print.

Nothing is imported here, so ``esl-hw --help`` stays fast: the subcommand's module is imported when
it runs, and it imports its stages (torch, amaranth, cocotb) inside the functions that need them.
"""
