"""The CrossGuard policy pack (rules in `policy.rules`, the pack built only in `policy/__main__.py`)."""
