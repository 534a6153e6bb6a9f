"""Shared by the template checks: run a broken copy, and report one line per check."""

import subprocess


def report(results):
    """`results`: (title, passed, detail) tuples. Returns 0 when all passed, else 1."""
    ok = 0
    for title, good, detail in results:
        ok += good
        print(f"{'ok  ' if good else 'FAIL'}  {title} ({detail})")
    print(f"{ok} passed, {len(results) - ok} failed")
    return 0 if ok == len(results) else 1


def rejected(cmd, expected, what):
    """Runs a check on a broken copy; it must exit non-zero with `FAIL  <expected>`."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    caught = proc.returncode != 0 and f"FAIL  {expected}" in proc.stdout
    detail = f"exit {proc.returncode}"
    if not caught:
        detail += f"; expected failing check {expected!r}; output:\n{proc.stdout}{proc.stderr}"
    return (f"broken copy is rejected: {what}", caught, detail)
