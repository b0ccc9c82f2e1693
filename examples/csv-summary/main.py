"""A Kiln `exec` function in Python: summarises CSV text (payload on stdin) as JSON on stdout."""
import csv
import io
import json
import statistics
import sys


def summarise(text):
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = {}
    for name in rows[0].keys() if rows else []:
        values = [row[name] for row in rows if row[name] not in (None, "")]
        try:
            numbers = [float(value) for value in values]
        except ValueError:
            columns[name] = {"type": "text", "distinct": len(set(values))}
            continue
        columns[name] = {
            "type": "number",
            "min": min(numbers),
            "max": max(numbers),
            "mean": statistics.fmean(numbers),
        }
    return {"rows": len(rows), "columns": columns}


if __name__ == "__main__":
    payload = sys.stdin.read()
    print(f"summarising {len(payload)} characters", file=sys.stderr)
    json.dump(summarise(payload), sys.stdout)
