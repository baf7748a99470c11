"""Rule files and decisions on statement facts."""
