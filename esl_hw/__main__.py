"""``python -m esl_hw`` runs the command line.

An entry point, not part of the core: it imports the application layer (:mod:`esl_hw.app`) only
when run as the main module, so importing ``esl_hw.__main__`` loads nothing beyond the core.
"""

if __name__ == "__main__":
    import sys

    from esl_hw.app.cli import main

    sys.exit(main())
