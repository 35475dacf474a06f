"""backends: OpenFlow, Click and VM generators, and the platform side that pushes them."""
