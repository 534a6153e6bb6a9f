"""Shared by the template checks: prints one line per check and returns the exit status."""


def report(results):
    """`results`: (title, passed, detail) tuples. Returns 0 when all passed, else 1."""
    ok = 0
    for title, good, detail in results:
        ok += good
        print(f"{'ok  ' if good else 'FAIL'}  {title} ({detail})")
    print(f"{ok} passed, {len(results) - ok} failed")
    return 0 if ok == len(results) else 1
