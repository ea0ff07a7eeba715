"""The report: tidy result tables, the paper's numbers, figures and report.md (reads only)."""
