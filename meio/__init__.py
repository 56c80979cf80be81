"""meio: multi-echelon inventory optimization for whole catalogs."""
