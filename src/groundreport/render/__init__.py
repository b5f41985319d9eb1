"""Static site rendering from report/."""
