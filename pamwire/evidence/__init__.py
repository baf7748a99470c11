"""Compliance evidence: `pamwire evidence export` writes one offline bundle (report,
CSV and JSON tables, manifest) for an auditor."""
