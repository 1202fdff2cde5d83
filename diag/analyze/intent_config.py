"""(being written)"""
from __future__ import annotations


def analyze(objects, state):
    return [], []
