"""Click configurations of module hosts."""
