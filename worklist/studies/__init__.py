"""Studies on the network worklist: listing, detail, priors."""
