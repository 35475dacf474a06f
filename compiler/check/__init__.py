"""Check: the AST becomes the checked IR (:mod:`compiler.ir`), or diagnostics."""
