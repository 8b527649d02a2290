"""Date formats for the whole site (``FORMAT_MODULE_PATH``): times to the second, in ISO order,
with their zone, instead of the English locale's "Nov. 25, 2026, 10 a.m."."""
