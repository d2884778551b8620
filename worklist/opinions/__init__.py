"""Second opinions: a question about a study for a subspecialty or a named radiologist."""
