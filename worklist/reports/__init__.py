"""Reports: drafts with optimistic concurrency, finalisation, addenda, and their history."""
