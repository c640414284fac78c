"""The command line, ``cnnlab <command>`` (:mod:`cnnlab.cli.main`): a thin layer over the Python API."""
