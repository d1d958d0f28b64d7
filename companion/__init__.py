"""The book pipeline on top of ``backward_lib``: chapters, stamps, execution, claims, run cards,
plots, generated pages and the CLI (``python -m companion``).

The science library never imports this package (an import-linter contract in ``make test``).
"""
