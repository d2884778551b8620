"""``/dashboard``: the network performance page for managers and admins (static assets)."""
