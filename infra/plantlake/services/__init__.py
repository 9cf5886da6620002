"""The local loopback stack: install, start, probe and stop each real service plantlake needs."""
