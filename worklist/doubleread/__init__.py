"""Double reading and peer review: a site's rules, the blinded second reads they create after
a first final report, their queue, and the arbitration of a discordance."""
