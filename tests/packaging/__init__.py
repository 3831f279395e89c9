"""The built wheel, installed on its own: the package another repository would get."""
