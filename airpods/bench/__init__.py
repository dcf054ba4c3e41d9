"""`airpods bench`: measuring a running llama-server through its own HTTP API (measure.py), the
history of every run (history.py), and this machine's figures the predictions use (machine.py)."""
