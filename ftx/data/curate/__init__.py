"""Curation: normalise, filter, dedup and score records, accounting for every drop in the ledger."""
