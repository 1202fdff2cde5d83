"""Independent views of a capture (tshark/pyshark, scapy, the crafted ground truth, and diag's
tables) reduced to one normal form per frame, so they can be compared message for message."""
