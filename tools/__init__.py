"""Tools for the repository itself: the docs' generated parts."""
