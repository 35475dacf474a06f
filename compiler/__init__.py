"""compiler: checks, header space, placement, steering and lowering of a site."""
