"""The embedded demo (demo.py) and the synthetic signals it and the tests are made of (synth.py, testsignals.py)."""
